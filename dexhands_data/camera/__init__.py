"""Camera-motion estimators: visual odometry, pycolmap (optional), ground truth pass-through."""
