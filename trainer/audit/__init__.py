"""``mscct-train audit``: perturbed clips, the audit run and its report."""
