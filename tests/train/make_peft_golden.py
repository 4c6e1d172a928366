"""Golden files for LoRA training parity with PEFT on the tiny Qwen2 model (tests/data/models/tiny-qwen2).

Runs where PyTorch, transformers and peft are installed (the GPU machine has them; a CPU is enough):
    python3 tests/train/make_peft_golden.py tests/data/models/tiny-qwen2 OUTPUT_DIR
and writes, in float64 so the reference carries no rounding of its own:
  OUTPUT_DIR/initial/   the starting adapter as PEFT saves it (r=4, alpha=8, all 7 projections; A from PEFT's
                        kaiming-uniform init, B drawn small and non-zero so every gradient is exercised)
  OUTPUT_DIR/trained/   the adapter after 10 AdamW steps (lr 1e-2, weight decay 0.01, linear schedule with
                        2 warmup steps, global-norm clipping at 1.0), alternating two fixed batches
  OUTPUT_DIR/golden.safetensors: the batches (input_ids, labels; -100 = no loss), the first step's LoRA
                        gradients under PEFT's tensor names, the losses / pre-clipping gradient norms /
                        learning rates of the 10 steps, and the logits of batch 0 with the trained adapter.
If OUTPUT_DIR/wick-trained/ holds an adapter that wick trained, PEFT loads it unchanged and its logits on batch 0
are stored too (wick_trained_logits), so the test can check that PEFT reads wick's adapters as wick applies them.
"""
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def causal_lm_loss(logits, labels):
    # transformers' causal-LM loss (shift by one, mean over labels != -100), kept in float64.
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


def peft_name(name):
    return name.replace(".default", "")


def main(model_dir, out_dir):
    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    vocab = base.config.vocab_size
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    model.save_pretrained(os.path.join(out_dir, "initial"))

    gen = torch.Generator().manual_seed(3)
    batches = []
    for b in range(2):
        ids = torch.randint(0, vocab, (2, 12), generator=gen)
        labels = ids.clone()
        labels[0, :3] = -100   # a prompt that is not learned
        labels[1, 10:] = -100  # padding
        if b == 1:
            labels[0, 5] = -100
        batches.append((ids, labels))

    params = [p for p in model.parameters() if p.requires_grad]
    names = [peft_name(n) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps=2, num_training_steps=10)
    golden = {}
    losses, norms, lrs = [], [], []
    for step in range(10):
        ids, labels = batches[step % 2]
        loss = causal_lm_loss(model(input_ids=ids).logits, labels)
        loss.backward()
        if step == 0:
            for name, p in zip(names, params):
                golden["grad." + name] = p.grad.detach().clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, 1.0)))
        lrs.append(optimizer.param_groups[0]["lr"])
        losses.append(float(loss))
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.save_pretrained(os.path.join(out_dir, "trained"))
    with torch.no_grad():
        golden["trained_logits"] = model(input_ids=batches[0][0]).logits.detach().clone()
    for b, (ids, labels) in enumerate(batches):
        golden[f"input_ids_{b}"] = ids
        golden[f"labels_{b}"] = labels
    golden["losses"] = torch.tensor(losses, dtype=torch.float64)
    golden["grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    golden["lrs"] = torch.tensor(lrs, dtype=torch.float64)

    wick_dir = os.path.join(out_dir, "wick-trained")
    if os.path.exists(os.path.join(wick_dir, "adapter_config.json")):
        fresh = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
        loaded = PeftModel.from_pretrained(fresh, wick_dir)
        with torch.no_grad():
            golden["wick_trained_logits"] = loaded(input_ids=batches[0][0]).logits.detach().clone()
    save_file({k: v.contiguous() for k, v in golden.items()}, os.path.join(out_dir, "golden.safetensors"))
    print(f"losses {losses}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
