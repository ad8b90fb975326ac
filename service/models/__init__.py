"""The data model, one module per aggregate. Import them all so metadata is complete."""

from .audit import AuditEvent
from .auth import ApiToken
from .ballot import Ballot, BallotChoice, Exclusion, Kiosk, KioskSession
from .campaign import Campaign, Criterion, Entry
from .publication import MerkleChunk, NightlyMark, Publication, RankingRun
from .review import Assignment, Expert, Score, ScoreHistory
from .roll import RollVoter
from .staff import OneTimeLink, Staff, StaffCampaign, StaffSession
from .verification import SmsCounter, SmsVerification

__all__ = [
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "Ballot",
    "BallotChoice",
    "Campaign",
    "Criterion",
    "Entry",
    "Exclusion",
    "Expert",
    "Kiosk",
    "KioskSession",
    "MerkleChunk",
    "NightlyMark",
    "Publication",
    "RankingRun",
    "OneTimeLink",
    "RollVoter",
    "Score",
    "ScoreHistory",
    "SmsCounter",
    "SmsVerification",
    "Staff",
    "StaffCampaign",
    "StaffSession",
]
