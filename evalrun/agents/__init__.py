"""Agents: the chat tool loop and the capture of a pipeline's own spans (engine layer)."""
