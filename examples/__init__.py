"""Sample chaincodes written against :mod:`actors.shim`, used by the demo, tests and bench."""
