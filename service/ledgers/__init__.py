"""The 三本台账, the statutory deadlines as rules, and the reports made from the case data."""
