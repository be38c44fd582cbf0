"""The per-clip stages: decode, faces, landmarks, mouth, shots, speaker, pose, silence, audio features, frame labels."""
