"""Units (bureau -> 街道教育办 -> schools), yearly and recurring campaigns, submissions, the ledger (台账)."""
