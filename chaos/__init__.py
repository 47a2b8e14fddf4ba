"""`make chaos`: thousands of turns over a multi-instance local stack, with faults, checked."""
