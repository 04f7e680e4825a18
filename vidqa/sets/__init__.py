"""Set-level metrics (FVD, KVD, FID, KID, IS, precision/recall) over video sets: members and
their clip/frame sampling, detector features cached by content, and the metric values."""
