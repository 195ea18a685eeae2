"""What the decoder tests compare against: torch's logits of a mixq.models Llama, and the error
measure of their bounds."""
import numpy as np


def torch_logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(ids)[None])[0].double().numpy()


def rel(a, b):
    """Largest absolute difference relative to the largest magnitude of the reference b."""
    return float(np.abs(a - b).max() / np.abs(b).max())
