"""Image jobs on their way to a worker: the queue interface, its two backends, the relay."""
