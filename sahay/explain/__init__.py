"""Where the model looked: class activation maps, overlays, and (later) regions and faithfulness."""
