"""The office console at ``/console``: staff set up and run campaigns in the browser.

Building a console page (part 2 builds on this)
-----------------------------------------------
* Routes live in modules of this package and register on ``bp`` (imported at the end of
  this file). Every route is guarded with ``@staff_required(...)`` from ``.guard``::

      @bp.get("/campaigns/<slug>/dashboard")
      @staff_required("admin", "manager", "observer")      # roles that may open it
      def dashboard(slug):
          campaign = campaign_for(slug)                     # 404, or 403 for a manager
          ...                                               # not assigned to it

      @bp.post("/campaigns/<slug>/something")
      @staff_required("admin", "manager")
      def change(slug):
          campaign = campaign_for(slug, change=True)        # 403 unless they may change it
          domain_function(campaign, ..., actor_of(current_staff()))
          db.session.commit()
          return redirect(...)

  No session (or an expired or forged one): GET redirects to ``/console/login?next=…``,
  any other method gets 401. A role not listed: 403. An observer is refused every
  non-GET request whatever the decorator says (read-only by rule, in ``bp.before_request``).
  CSRF: every POST form carries
  ``<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">`` (Flask-WTF checks
  it app-wide; a missing or wrong token is a 400).
* ``current_staff()`` is the logged-in ``Staff`` (or None); ``actor_of(staff)`` is the
  audit actor ``staff:<name>``: pass it to the domain function, which writes the audit
  event in the same transaction.
* Templates extend ``console/base.html`` and fill these blocks:
  ``title`` (the <title>), ``heading`` (the page's <h1>), ``actions`` (buttons beside the
  heading), ``content`` (the page). ``crumbs`` may add breadcrumb links after 控制台.
  Texts are Chinese msgids through ``_()``; English in the translations catalogue.
  No inline script or style (CSP); ``static/console.css`` holds the console's styles and
  ``static/console.js`` (optional, progressive enhancement only).
"""

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="../templates")

from . import (  # noqa: E402,F401  (routes register on import)
    anomalies,
    audit_log,
    auth,
    campaigns,
    dashboard,
    entries,
    experts,
    home,
    kiosks,
    publishing,
    staff,
)
