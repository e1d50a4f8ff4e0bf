"""Training, prediction and ablation of the MOSA relation head on the cached tensors."""
