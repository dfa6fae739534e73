"""One full ReFT PPO iteration: ours against a PyTorch + transformers reference, same weights, same run.

SmolLM2-135M in float32 from the shared GGUF (or `--model`; `--dtype bfloat16`: float32
parameters and bf16 compute on both sides, transformers under torch autocast), `--questions`
GSM8K test questions (16), one sample each, `--new-tokens` (128) new tokens per sample (EOS
suppressed on both sides, so both decode the same number of tokens), then the paper's
iteration: score with the reward (host code shared by both sides), a no-grad pass for old
log-probs, values and the frozen reference's log-probs, KL-penalised rewards, GAE, whitening,
and 2 PPO epochs of minibatches of `--minibatch` (8) rows with clipped policy and value losses,
AdamW and clipping.

The reference is written the way the reference code (mwp_ReFT) runs it: `generate`, full-vocabulary
logits, a value head on the last hidden state, GAE as a Python loop over time, torch AdamW.
Prints both time splits (sample / score / no-grad pass / update), each side's matmul FLOPs and
the floor they set at that side's measured matmul peak (XLA for ours, torch for the reference),
and, last, `ppo_speedup=<reference seconds / our seconds>` for the whole iteration. Timed on the
second iteration of each side (the first compiles / warms up).
"""

from __future__ import annotations

import copy
import os
import time

import jax
import numpy as np

from benchmarks.common import (GSM8K_TEST, cpu_model, describe_model, load_pair,
                               measured_peak_flops, parse_args, require, synchronize,
                               torch_device, torch_peak_flops)

KL_COEF, GAMMA, LAM, CLIP, VCLIP, VF_COEF, LR = 0.05, 1.0, 0.95, 0.2, 0.2, 5.0, 3e-7


def questions(n: int):
    from reft_jax.data import load_file

    require(GSM8K_TEST)
    return load_file(GSM8K_TEST)[:n]


def rewards_of(texts, examples) -> np.ndarray:
    from reft_jax.rewards import reward_fn

    return np.asarray(reward_fn(texts, examples, "nl"), np.float32)


# ---------------------------------------------------------------------------------------- FLOPs

def matmul_flops(cfg, trunk_tokens: float, head_tokens: float, context: float) -> float:
    """FLOPs of the products: 2 per trunk weight per token (the embedding is a lookup), 2 V E per
    token through the LM head, and attention's score and value products over `context` keys."""
    head = cfg.vocab_size * cfg.hidden_size
    trunk = cfg.num_params - head * (1 if cfg.tie_embeddings else 2)
    attention = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * context
    return trunk_tokens * (2 * trunk + attention) + head_tokens * 2 * head


def iteration_flops(cfg, rows: int, prompt: float, width: int, response: int, minibatch: int,
                    head_passes: int, prompt_head: bool) -> dict[str, float]:
    """Matmul FLOPs per phase of one iteration: sampling (a prefill of `prompt` tokens per row,
    then one token per row per step), the no-grad pass (policy and reference over rows of
    `width` tokens), and 2 PPO epochs (forward + backward, 3 trunk passes; `head_passes` LM-head
    products per token: 3, or 4 where the backward recomputes the logits). `prompt_head`: the LM
    head runs over every position, not only the response's."""
    head_tokens = width if prompt_head else response

    def over_rows(n: int, trunk_passes: int, head_products: int) -> float:
        return matmul_flops(cfg, trunk_passes * n * width, head_products * n * head_tokens,
                            width / 2)

    sample = (matmul_flops(cfg, rows * prompt, rows, prompt / 2)
              + matmul_flops(cfg, rows * response, rows * response, prompt + response / 2))
    updates = 2 * rows // minibatch
    return {"sample": sample, "no-grad": 2 * over_rows(rows, 1, 1),
            "update": updates * over_rows(minibatch, 3, head_passes)}


def report_flops(name: str, flops: dict, splits: dict, peak: float) -> str:
    total = sum(flops.values())
    rates = ", ".join(f"{k} {flops[k] / splits[k] / 1e9:.0f}" for k in flops)
    return (f"{name:12s}: {total / 1e12:.2f} TFLOP of matmuls; GFLOP/s {rates}; at its matmul "
            f"peak of {peak / 1e9:.0f} GFLOP/s they take at least {total / peak:.1f} s")


# ----------------------------------------------------------------------------------------- ours

def ours(model, tok, examples, args, iterations: int = 2):
    from reft_jax.config import default_config
    from reft_jax.models import save_pretrained
    from reft_jax.rl.rollout import collect
    from reft_jax.rewards import judge
    from reft_jax.sampling import Sampler, SamplingSettings
    from reft_jax.train.loop import Position
    from reft_jax.train.placement import Placement
    from reft_jax.train.ppo import PPOLearner
    from reft_jax.train.rl_stage import RLRun, language_model
    from reft_jax.train.state import create_train_state, make_optimizer
    from flax import nnx
    import tempfile

    config = default_config()
    config.model.dtype = args.dtype  # the frozen reference computes in it too
    r = config.reft
    r.rollout_batch, r.samples_per_question, r.minibatch_size = len(examples), 1, args.minibatch
    r.learning_rate, r.kl_coef = LR, KL_COEF
    warm = tempfile.mkdtemp(prefix="bench_ppo_warm_")
    save_pretrained(model, tok, warm)  # the frozen reference is read from the warm-up folder
    learner = PPOLearner(config)
    optimizer, _ = make_optimizer(LR, 100, 0.0, 0.0, 1e-8, 1.0, schedule="constant")
    module = learner.policy(model)
    graphdef, state = create_train_state(module, optimizer)
    placement = Placement.for_run(config.mesh, module, state, learner.micro_rows(config))
    state = placement.put_state(state)
    learner.prepare(RLRun(config, tok, warm, graphdef, optimizer, placement))
    sampler = Sampler(tok.eos_token_id, tok.pad_token_id)
    settings = SamplingSettings(max_new_tokens=args.new_tokens, temperature=1.0,
                                stop_at_eos=False)
    judge_fn = lambda texts, rows: judge(texts, rows, "nl")
    splits = None
    for it in range(iterations):
        start = time.perf_counter()
        lm = language_model(nnx.merge(graphdef, state.params))
        rollout = collect(sampler, lm, tok, examples, "nl", settings, jax.random.key(it), judge_fn)
        learn_start = time.perf_counter()
        state, metrics = learner.learn(state, rollout, Position(0, it, it))
        jax.block_until_ready(state)
        total = time.perf_counter() - start
        splits = {"sample": rollout.seconds["sample"], "score": rollout.seconds["score"],
                  "no-grad + update": time.perf_counter() - learn_start,
                  "no-grad": metrics["time_no_grad"], "update": metrics["time_update"],
                  "total": total}
        metrics["score"] = float(rollout.scores.mean())
    prompt = float(np.mean(rollout.attention_mask.sum(1) - rollout.mask.sum(1)))  # real tokens
    layout = {"prompt": prompt, "width": rollout.input_ids.shape[1], "response": rollout.width}
    return splits, metrics, layout


# ------------------------------------------------------------------------------------ reference

class ValueHead:
    def __init__(self, hidden: int, device):
        import torch

        torch.manual_seed(0)
        self.linear = torch.nn.Linear(hidden, 1).to(device)


def reference(hf_model, tok, examples, args, iterations: int = 2):
    import torch

    device = torch_device()
    # bfloat16: float32 parameters under autocast, as our side (float32 parameters, bf16 compute).
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                              enabled=args.dtype == "bfloat16")
    policy = hf_model.train()
    ref_model = copy.deepcopy(hf_model).eval()
    value_head = ValueHead(hf_model.config.hidden_size, device).linear
    params = list(policy.parameters()) + list(value_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=LR, eps=1e-8, weight_decay=0.0)
    prompts = ["Question:\n" + ex.question.strip() + "\nAnswer reasoning:\n" for ex in examples]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    width = enc["input_ids"].shape[1]
    splits = None
    for it in range(iterations):
        torch.manual_seed(it)
        start = time.perf_counter()
        with torch.no_grad(), autocast:
            out = policy.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                  max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                  pad_token_id=tok.pad_token_id)
        synchronize()
        sampled = time.perf_counter()
        response = out[:, width:]
        texts = tok.batch_decode(response, skip_special_tokens=True)
        scores = torch.tensor(rewards_of(texts, examples), device=device)
        scored = time.perf_counter()
        attention = torch.cat([enc["attention_mask"], torch.ones_like(response)], dim=1)
        mask = torch.ones(response.shape, device=device)

        def terms(model, with_values):
            outputs = model(input_ids=out, attention_mask=attention, output_hidden_states=with_values)
            logits = outputs.logits[:, width - 1:-1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, response[..., None])[..., 0]
            values = value_head(outputs.hidden_states[-1][:, width - 1:-1]).float()[..., 0] if with_values else None
            return logp, values

        with torch.no_grad():
            with autocast:
                old_logp, old_values = terms(policy, True)
                ref_logp, _ = terms(ref_model, False)
            rewards = -KL_COEF * (old_logp - ref_logp) * mask
            rewards[:, -1] += scores  # every response has exactly new_tokens tokens
            advantages = torch.zeros_like(rewards)
            last = torch.zeros(rewards.shape[0], device=device)
            for t in reversed(range(rewards.shape[1])):  # GAE as the reference code loops
                next_value = old_values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
                delta = rewards[:, t] + GAMMA * next_value - old_values[:, t]
                last = delta + GAMMA * LAM * last
                advantages[:, t] = last
            returns = advantages + old_values
            mean, var = advantages.mean(), advantages.var()
            advantages = (advantages - mean) / torch.sqrt(var + 1e-8)
        synchronize()
        no_grad = time.perf_counter()
        rows = out.shape[0]
        generator = torch.Generator().manual_seed(it)
        for _ in range(2):
            order = torch.randperm(rows, generator=generator)
            for mb in order.split(args.minibatch):
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    outputs = policy(input_ids=out[mb], attention_mask=attention[mb],
                                     output_hidden_states=True)
                    values = value_head(outputs.hidden_states[-1][:, width - 1:-1]).float()[..., 0]
                logits = outputs.logits[:, width - 1:-1].float()
                logp = torch.log_softmax(logits, dim=-1).gather(-1, response[mb][..., None])[..., 0]
                ratio = torch.exp(logp - old_logp[mb])
                adv = advantages[mb]
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - CLIP, 1 + CLIP)).mean(-1).mean()
                clipped = old_values[mb] + (values - old_values[mb]).clamp(-VCLIP, VCLIP)
                vf = 0.5 * torch.max((values - returns[mb]) ** 2,
                                     (clipped - returns[mb]) ** 2).mean(-1).mean()
                (pg + VF_COEF * vf).backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
        synchronize()
        end = time.perf_counter()
        splits = {"sample": sampled - start, "score": scored - sampled, "no-grad + update":
                  end - scored, "total": end - start}
        splits["no-grad"], splits["update"] = no_grad - scored, end - no_grad
    return splits, {"prompt": width, "width": out.shape[1], "response": args.new_tokens}


def main():
    import torch

    args = parse_args(__doc__, questions=(16, "GSM8K questions, one sample each"),
                      new_tokens=(128, "tokens sampled per question"),
                      minibatch=(8, "rows per PPO update"))
    model, tok, hf_model = load_pair(args.model, args.dtype)
    examples = questions(args.questions)
    print(f"cpu: {cpu_model()}; jax {jax.devices()[0].device_kind}, torch on {torch_device()} "
          f"({torch.get_num_threads()} threads)")
    print(f"model: {describe_model(model)}; {args.questions} questions x 1 sample x "
          f"{args.new_tokens} tokens, 2 PPO epochs of minibatch {args.minibatch}")
    our_splits, metrics, our_layout = ours(model, tok, examples, args)
    ref_splits, ref_layout = reference(hf_model, tok, examples, args)
    for name, splits in (("ours", our_splits), ("transformers", ref_splits)):
        print(f"{name:12s}: " + ", ".join(f"{k} {v:.2f} s" for k, v in splits.items()))
    # Ours prefills packed prompts (real tokens), reads the LM head on response positions only
    # and recomputes its logits in the backward; the reference's forward covers every position.
    rows, cfg = args.questions, model.config
    our_flops = iteration_flops(cfg, rows, **our_layout, minibatch=args.minibatch,
                                head_passes=4, prompt_head=False)
    ref_flops = iteration_flops(cfg, rows, **ref_layout, minibatch=args.minibatch,
                                head_passes=3, prompt_head=True)
    # The peak of the trunk's widest product at an update's token count, the best either
    # library reached on the model's shapes (a square 2048 product ran slower under XLA).
    shape = (args.minibatch * our_layout["width"], cfg.hidden_size, cfg.intermediate_size)
    our_peak = max(measured_peak_flops(args.dtype, shape) for _ in range(3))
    ref_peak = max(torch_peak_flops(args.dtype, shape) for _ in range(3))
    print(report_flops("ours", our_flops, our_splits, our_peak))
    print(report_flops("transformers", ref_flops, ref_splits, ref_peak))
    print(f"2x needs ours in {ref_splits['total'] / 2:.1f} s: "
          f"{sum(our_flops.values()) / (ref_splits['total'] / 2) / 1e9:.0f} GFLOP/s of matmuls "
          f"over the whole iteration, against XLA's peak of {our_peak / 1e9:.0f}")
    print(f"our last iteration: score {metrics['score']:.3f}, kl {metrics['kl']:.4f}, "
          f"pg_loss {metrics['pg_loss']:.4f}, vf_loss {metrics['vf_loss']:.4f}; load average "
          f"{os.getloadavg()[0]:.1f} (a busy machine slows both sides)")
    print(f"ppo_speedup={ref_splits['total'] / our_splits['total']:.2f}")


if __name__ == "__main__":
    main()
