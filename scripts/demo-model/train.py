#!/usr/bin/env python3
"""Trains unicorn's bundled demo model: a small Gemma 3 (Gemma3ForCausalLM) on the King James Bible.

Honest and small: our own byte-level BPE vocabulary (4,096 tokens, trained here with the `tokenizers`
library, so tokenizer.json is standard), ~8.6 M parameters, trained from scratch on one GPU in a few
minutes, the checkpoint with the best validation loss kept. Every 20th chapter is held out for
validation. Writes, under --out:

  model/                      save_pretrained (bf16 safetensors, config.json, generation_config.json),
                              tokenizer.json, tokenizer_config.json
  reference.safetensors       transformers' f32 logits of the saved model on held-out chapters
                              (tokens + logits), for the build report's KL / top-1 against unicorn
  train-report.json           corpus, parameters, steps, time, losses, transformers' greedy samples

Usage (device machine):  python3 scripts/demo-model/train.py --corpus .device/corpus/kjv.txt --out /tmp/demo
"""
import argparse
import json
import math
import os
import random
import time

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS = ['<pad>', '<eos>', '<bos>', '<unk>']  # ids 0-3, where Gemma puts pad, eos, bos, unk
VOCAB = 4096
SEQ = 256
SAMPLE_PROMPTS = ['In the beginning', 'And the LORD said unto Moses,', 'Blessed are the']
# A base model has no conversation format: the template joins the turns as plain text, so chat
# continues what was said (a reply ends with the chapter, or at the token limit).
CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] | trim }}\n{% endfor %}"


def read_chapters(path):
    text = open(path, encoding='utf-8').read()
    return [c.strip() for c in text.split('\n\n') if c.strip()]


def train_tokenizer(chapters):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(chapters, trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    tok.post_processor = processors.TemplateProcessing(single='<bos> $A', pair='<bos> $A <bos> $B', special_tokens=[('<bos>', 2)])
    return tok


def stream(tok, chapters):
    """<bos> chapter <eos> <bos> chapter <eos> ... as one long token stream."""
    ids = []
    for c in chapters:
        ids += tok.encode(c).ids + [1]
    return torch.tensor(ids, dtype=torch.long)


def batches(data, batch, gen):
    while True:
        starts = torch.randint(0, len(data) - SEQ - 1, (batch,), generator=gen)
        x = torch.stack([data[s:s + SEQ + 1] for s in starts.tolist()])
        yield x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(model, data, device):
    model.eval()
    losses = []
    for s in range(0, len(data) - SEQ - 1, SEQ):
        x = data[s:s + SEQ + 1].to(device)
        with torch.autocast('cuda', dtype=torch.bfloat16):
            logits = model(input_ids=x[None, :-1], use_cache=False).logits.float()
        losses.append(torch.nn.functional.cross_entropy(logits[0], x[1:]).item())
    model.train()
    return sum(losses) / len(losses)


@torch.no_grad()
def greedy(model, tok, prompt, n, device):
    ids = tok.encode(prompt).ids
    out = []
    for _ in range(n):
        nxt = int(model(input_ids=torch.tensor([ids + out], device=device), use_cache=False).logits[0, -1].argmax())
        if nxt == 1:
            break
        out.append(nxt)
    return {'prompt': prompt, 'ids': ids, 'greedy': out, 'text': tok.decode(out)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--corpus', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--steps', type=int, default=3000)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--eval-every', type=int, default=100)
    ap.add_argument('--patience', type=int, default=5, help='evaluations without improvement before stopping')
    a = ap.parse_args()
    random.seed(0)
    torch.manual_seed(0)
    device = 'cuda'
    t_start = time.time()

    chapters = read_chapters(a.corpus)
    val_ch = chapters[::20]
    train_ch = [c for i, c in enumerate(chapters) if i % 20 != 0]
    tok = train_tokenizer(train_ch)
    train_data, val_data = stream(tok, train_ch), stream(tok, val_ch)
    print(f'corpus: {len(chapters)} chapters; train {len(train_data):,} tokens, validation {len(val_data):,} tokens', flush=True)

    config = transformers.Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=256, intermediate_size=1024, num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=1,
        head_dim=64, query_pre_attn_scalar=64, sliding_window=128, max_position_embeddings=1024,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
    )
    config.architectures = ['Gemma3ForCausalLM']
    model = transformers.Gemma3ForCausalLM(config).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(f'model: {params:,} parameters; layer types {config.layer_types}', flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps))))
    gen = torch.Generator().manual_seed(0)
    best = (float('inf'), 0, None)
    history = []
    bad = 0
    t_train = time.time()
    step = 0
    for step, (x, y) in enumerate(batches(train_data, a.batch, gen), start=1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast('cuda', dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % a.eval_every == 0 or step == a.steps:
            val = evaluate(model, val_data, device)
            history.append({'step': step, 'train_loss': round(loss.item(), 4), 'val_loss': round(val, 4), 'seconds': round(time.time() - t_train, 1)})
            print(f"step {step}: train {loss.item():.3f}, validation {val:.3f} ({time.time() - t_train:.0f} s)", flush=True)
            if val < best[0]:
                best = (val, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                bad = 0
            else:
                bad += 1
                if bad >= a.patience:
                    print('validation loss stopped improving: stopping', flush=True)
                    break
        if step >= a.steps:
            break
    train_seconds = time.time() - t_train
    model.load_state_dict(best[2])

    out_model = os.path.join(a.out, 'model')
    os.makedirs(out_model, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out_model, safe_serialization=True)
    gen_cfg = transformers.GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0, do_sample=True, temperature=0.7, top_k=40, top_p=0.95, repetition_penalty=1.1)
    gen_cfg.save_pretrained(out_model)
    tok.save(os.path.join(out_model, 'tokenizer.json'))
    with open(os.path.join(out_model, 'tokenizer_config.json'), 'w') as f:
        json.dump({'tokenizer_class': 'PreTrainedTokenizerFast', 'bos_token': '<bos>', 'eos_token': '<eos>', 'pad_token': '<pad>', 'unk_token': '<unk>',
                   'model_max_length': 1024, 'clean_up_tokenization_spaces': False, 'chat_template': CHAT_TEMPLATE}, f, indent=1)

    # The reference, from the files as saved: f32 compute over the bf16 weights, eager attention.
    ref_model = transformers.Gemma3ForCausalLM.from_pretrained(out_model, dtype=torch.float32, attn_implementation='eager').to(device).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out_model)
    assert hf_tok('In the beginning')['input_ids'] == tok.encode('In the beginning').ids
    ref_tokens = torch.stack([val_data[i * 4 * SEQ:i * 4 * SEQ + 128] for i in range(4)])  # 4 held-out windows of 128 tokens
    with torch.no_grad():
        ref_logits = ref_model(input_ids=ref_tokens.to(device)).logits.float().cpu()
    save_file({'tokens': ref_tokens.to(torch.int32).contiguous(), 'logits': ref_logits.to(torch.float16).contiguous()}, os.path.join(a.out, 'reference.safetensors'),
              metadata={'what': 'transformers f32 logits (stored f16) of the saved model on 4 held-out windows of 128 tokens', 'transformers': transformers.__version__})
    final_val = evaluate(ref_model, val_data, device)
    samples = [greedy(ref_model, tok, p, 48, device) for p in SAMPLE_PROMPTS]
    report = {
        'model': 'Gemma3ForCausalLM', 'parameters': params,
        'config': {k: getattr(config, k) for k in ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'sliding_window', 'max_position_embeddings']},
        'corpus': {'text': 'King James Bible (1611), Debian packages bible-kjv-text 4.38 (data) and bible-kjv 4.38 (its reader)', 'license': 'public domain (copyright expired)',
                   'chapters': len(chapters), 'train_chapters': len(train_ch), 'validation_chapters': len(val_ch), 'train_tokens': len(train_data), 'validation_tokens': len(val_data)},
        'tokenizer': f'byte-level BPE, {VOCAB} tokens, trained on the training chapters with tokenizers',
        'training': {'steps_run': step, 'best_step': best[1], 'batch': a.batch, 'sequence': SEQ, 'lr': a.lr, 'optimizer': 'AdamW (0.9, 0.95), weight decay 0.1, cosine', 'autocast': 'bf16',
                     'seconds': round(train_seconds, 1), 'gpu': torch.cuda.get_device_name(0), 'history': history},
        'validation_loss': round(final_val, 4), 'validation_perplexity': round(math.exp(final_val), 2),
        'transformers': transformers.__version__, 'torch': torch.__version__, 'greedy_samples': samples,
        'total_seconds': round(time.time() - t_start, 1),
    }
    with open(os.path.join(a.out, 'train-report.json'), 'w') as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: report[k] for k in ['parameters', 'validation_loss', 'validation_perplexity']}), flush=True)
    for s in samples:
        print(repr(s['prompt'] + s['text']), flush=True)


if __name__ == '__main__':
    main()
