"""Hand estimators behind one protocol: MediaPipe (default, CPU), HaMeR (optional, GPU)."""
