"""The admin console's state: what it shows of a node beyond `/metrics` (trends, recent log
lines, per-channel rates) and the JSON it is drawn from. It reads the node; it never changes
anything the node's clients depend on (the actions go through the node's own methods)."""
