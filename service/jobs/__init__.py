"""Long work (issuing a campaign) as jobs with progress, run by a worker pool."""
