"""Organisms: narrow fine-tuning of a chat model (rank-1 LoRA to full fine-tuning)."""
