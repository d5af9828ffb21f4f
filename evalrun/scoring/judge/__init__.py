"""The LLM-as-judge scorer (``type: llm_judge``): rubrics, the OpenAI-compatible client,
verdict parsing and aggregation, prices."""

from evalrun.scoring.judge.scorer import JudgeConfig, LLMJudge

__all__ = ["JudgeConfig", "LLMJudge"]
