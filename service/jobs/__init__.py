"""Background work by name: a registry of job kinds, the runner interface, the embedded runner."""
