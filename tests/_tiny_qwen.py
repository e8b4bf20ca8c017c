"""A tiny random-weight `QwenImageEditPlusPipeline` built offline, for CPU tests.

Shapes follow diffusers' own dummy components for this pipeline (2-layer
transformer, z_dim-4 VAE, 16-wide Qwen2.5-VL). The tokenizer is a byte-level
`Qwen2Tokenizer` over the 256 byte symbols plus Qwen's special tokens, so
nothing is downloaded. Importing this module needs torch, diffusers and
transformers: import it only after `pytest.importorskip("diffusers")`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import diffusers as _diffusers
import pytest
import torch
import transformers as _transformers
from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus

# Both libraries are only partly typed; build through untyped handles.
diffusers: Any = _diffusers
transformers: Any = _transformers

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Special tokens follow the 256 byte symbols.
TOKEN_IDS = {token: 256 + index for index, token in enumerate(SPECIAL_TOKENS)}
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def _byte_symbols() -> list[str]:
    """The printable stand-ins byte-level BPE uses for the 256 byte values."""
    printable = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)}
    symbols, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def build_tokenizer() -> Any:
    """A byte-level `Qwen2Tokenizer` with no merges: one token per UTF-8 byte."""
    vocab = {symbol: index for index, symbol in enumerate(_byte_symbols())}
    vocab.update(TOKEN_IDS)
    tokenizer = transformers.Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    return tokenizer


class ImageOnlyProcessor(transformers.Qwen2VLProcessor):  # type: ignore[misc]
    """`Qwen2VLProcessor` without its video part, which needs torchvision."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=None, **kwargs
        )


def _text_encoder() -> Any:
    text_config = {
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        "rope_theta": 1_000_000.0,
        "vocab_size": VOCAB_SIZE,
        "bos_token_id": TOKEN_IDS["<|endoftext|>"],
        "eos_token_id": TOKEN_IDS["<|im_end|>"],
        "pad_token_id": TOKEN_IDS["<|endoftext|>"],
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_heads": 2,
        "out_hidden_size": 16,
    }
    config = transformers.Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        vision_start_token_id=TOKEN_IDS["<|vision_start|>"],
        vision_end_token_id=TOKEN_IDS["<|vision_end|>"],
        image_token_id=TOKEN_IDS["<|image_pad|>"],
        video_token_id=TOKEN_IDS["<|video_pad|>"],
    )
    return transformers.Qwen2_5_VLForConditionalGeneration(config).eval()


def build_tiny_pipeline(seed: int = 0) -> Any:
    """Build a random-weight `QwenImageEditPlusPipeline` on CPU (about 0.1 s)."""
    torch.manual_seed(seed)
    transformer = diffusers.QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    vae = diffusers.AutoencoderKLQwenImage(
        base_dim=24,
        z_dim=4,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    )
    tokenizer = build_tokenizer()
    pipeline = diffusers.QwenImageEditPlusPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        text_encoder=_text_encoder(),
        tokenizer=tokenizer,
        processor=ImageOnlyProcessor(
            image_processor=transformers.Qwen2VLImageProcessorPil(), tokenizer=tokenizer
        ),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@contextmanager
def small_reference_sizes() -> Iterator[None]:
    """Shrink the pipeline's internal reference resize (1024x1024 by default).

    At full size each reference costs ~20 s on CPU; at 64x64 a 2-step call takes
    a fraction of a second.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline_qwenimage_edit_plus, "VAE_IMAGE_SIZE", 64 * 64)
        patch.setattr(pipeline_qwenimage_edit_plus, "CONDITION_IMAGE_SIZE", 56 * 56)
        yield


@contextmanager
def tiny_pipeline_context() -> Iterator[Any]:
    """The tiny pipeline, with small reference sizes while it is in use."""
    with small_reference_sizes():
        yield build_tiny_pipeline()
