"""The mixed-modality recipes: one transformer prior over text prompts, image codes and audio codes."""
