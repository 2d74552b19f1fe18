"""Pieces every role uses and no role owns: DER writing, the choice between a
native module and its pure-Python twin, typed settings, the Prometheus text
format. Imports no other package of the project."""
