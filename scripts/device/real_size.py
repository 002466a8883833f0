#!/usr/bin/env python3
"""Real-size check of unicorn against transformers (device machine, CUDA).

`make`: builds a random-initialised bf16 checkpoint from a real published config (the text model of
Gemma 3 4B, or Qwen 2.5 7B), with weights spread as in scripts/fixtures/make_fixtures.py (so the
layers matter and the next-token distributions are far from uniform), saves it with save_pretrained,
and records transformers' logits (f32 compute over the bf16 weights, eager attention, CUDA) for a
64-token prompt of random ids into <out>/reference.safetensors.
Then `node dist/bench/compare-logits.js <out>` runs unicorn on the same prompt and prints the mean KL
divergence and the top-1 agreement.

    python3 scripts/device/real_size.py make --config test/fixtures/configs/gemma3-4b-published.json --out /tmp/gemma3-4b
"""
import argparse
import json
import math
import os
import shutil
import time

import torch
import transformers
from safetensors.torch import save_file

PROMPT = 64


def randomise(model, seed, gemma, hidden):
    g = torch.Generator(device='cuda').manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32, device='cuda')
            if 'embed_tokens' in name or 'lm_head' in name:
                p.copy_(r / math.sqrt(hidden) if gemma else r * 0.5)
            elif p.ndim >= 2:
                p.copy_(r / math.sqrt(p.shape[-1]))
            elif name.endswith('model.norm.weight'):
                p.copy_(r * 0.1 + (3.0 if gemma else 4.0))
            elif 'norm' in name:
                p.copy_(r * 0.1 if gemma else 1.0 + r * 0.1)
            else:
                p.copy_(r * 0.1)


def save_shards(model, out, shard_bytes=5 * 10**9):
    """What save_pretrained writes (config.json, safetensors shards of at most 5 GB and their index,
    the tied LM head left out), a tensor at a time through one pinned host buffer: several times
    faster than save_pretrained for the 54 GB of a Gemma 3 27B, and never more than a shard in RAM."""
    os.makedirs(out, exist_ok=True)
    model.config.save_pretrained(out)
    state = model.state_dict()
    if getattr(model.config, 'tie_word_embeddings', False):
        state.pop('lm_head.weight', None)
    names = list(state.keys())
    shards, size = [[]], 0
    for name in names:
        b = state[name].numel() * state[name].element_size()
        if shards[-1] and size + b > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += b
    weight_map, total = {}, 0
    for i, part in enumerate(shards):
        file = f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors'
        save_file({k: state[k].contiguous().cpu() for k in part}, os.path.join(out, file), metadata={'format': 'pt'})
        for k in part:
            weight_map[k] = file
            total += state[k].numel() * state[k].element_size()
    with open(os.path.join(out, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)


def make(config_path, out, seed, reference=True):
    with open(config_path) as f:
        published = json.load(f)
    arch = published['architectures'][0]
    if arch == 'Gemma3ForConditionalGeneration':
        cfg = transformers.Gemma3Config(**published).text_config
        cls = transformers.Gemma3ForCausalLM
    else:
        cfg = transformers.AutoConfig.for_model(published['model_type'], **{k: v for k, v in published.items() if k != 'model_type'})
        cls = getattr(transformers, arch)
    cfg._attn_implementation = 'eager'
    torch.manual_seed(seed)
    # Built in bf16 straight away: a 27B in f32 would be 108 GB before the conversion.
    torch.set_default_dtype(torch.bfloat16)
    with torch.device('cuda'):
        model = cls(cfg).eval()
    torch.set_default_dtype(torch.float32)
    gemma = arch.startswith('Gemma3')
    randomise(model, seed, gemma, cfg.hidden_size)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    save_shards(model, out)
    n = sum(p.numel() for p in model.parameters())
    print(f'{out}: saved {n * 2 / 1e9:.1f} GB in {time.time() - t0:.0f} s', flush=True)
    if not reference:
        print(f'{out}: {arch} text model, {n / 1e9:.2f} B parameters, bf16 checkpoint (no reference)')
        return
    ids = torch.randint(3, cfg.vocab_size - 1, (PROMPT,), generator=torch.Generator().manual_seed(seed + 1))
    t0 = time.time()
    model = model.float()
    with torch.no_grad():
        logits = model(input_ids=ids[None].cuda(), use_cache=False).logits[0].float().cpu()
    save_file({'input_ids': ids.to(torch.int32), 'logits': logits}, os.path.join(out, 'reference.safetensors'),
              metadata={'config': os.path.basename(config_path), 'transformers': transformers.__version__, 'torch': torch.__version__,
                        'compute': 'float32 over bf16 weights, eager attention, CUDA'})
    print(f'{out}: {arch} text model, {n / 1e9:.2f} B parameters, bf16 checkpoint; reference logits {tuple(logits.shape)}, '
          f'logit std {float(logits.std()):.2f} ({time.time() - t0:.0f} s)')


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    m = sub.add_parser('make')
    m.add_argument('--config', required=True)
    m.add_argument('--out', required=True)
    m.add_argument('--seed', type=int, default=5)
    m.add_argument('--no-reference', action='store_true', help='only the checkpoint (no transformers forward)')
    a = ap.parse_args()
    make(a.config, a.out, a.seed, reference=not a.no_reference)


if __name__ == '__main__':
    main()
