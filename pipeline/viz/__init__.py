"""Pictures of scene graphs: frames with boxes and triplets, video timelines, contact sheets."""
