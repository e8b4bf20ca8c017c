"""Simulated backends on loopback, speaking the real wire protocols.

For tests, the bench and users alike: start one with ``SimServer(app)``.
"""

from __future__ import annotations

from ._common import Faults as Faults
from ._common import Latency as Latency
from ._common import TransportFault as TransportFault
from ._gemini import GeminiRequest as GeminiRequest
from ._gemini import SimGemini as SimGemini
from ._images import SimImageHost as SimImageHost
from ._images import make_bomb_png as make_bomb_png
from ._images import make_png as make_png
from ._judge import JudgeFault as JudgeFault
from ._judge import JudgeFaults as JudgeFaults
from ._judge import JudgeRequest as JudgeRequest
from ._judge import SimJudge as SimJudge
from ._policy import PolicyScript as PolicyScript
from ._policy import SimPolicy as SimPolicy
from ._qwen import QwenFault as QwenFault
from ._qwen import QwenFaults as QwenFaults
from ._qwen import SimQwenService as SimQwenService
from ._serper import SimSerper as SimSerper
from ._server import RouteStats as RouteStats
from ._server import SimServer as SimServer
from ._server import Stats as Stats
from ._stack import SimConfig as SimConfig
from ._stack import SimStack as SimStack

__all__ = [
    "Faults",
    "GeminiRequest",
    "JudgeFault",
    "JudgeFaults",
    "JudgeRequest",
    "Latency",
    "PolicyScript",
    "QwenFault",
    "QwenFaults",
    "RouteStats",
    "SimConfig",
    "SimGemini",
    "SimImageHost",
    "SimJudge",
    "SimPolicy",
    "SimQwenService",
    "SimSerper",
    "SimServer",
    "SimStack",
    "Stats",
    "TransportFault",
    "make_bomb_png",
    "make_png",
]
