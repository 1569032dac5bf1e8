"""Pure rules and types of the hub: no I/O, no framework, standard library only."""
