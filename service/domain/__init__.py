"""Domain functions: the rules live here; views parse, call one function, render."""
