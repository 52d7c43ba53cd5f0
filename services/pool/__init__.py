"""The worker-pool manager: runs and supervises the stage processes of one deployment."""
