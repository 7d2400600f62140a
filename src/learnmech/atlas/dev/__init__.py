"""Development: the local learning coefficient as a measured quantity, and how it rises through the stages of training."""
