"""Publishing models on the Hugging Face Hub (`vqtok push`)."""
