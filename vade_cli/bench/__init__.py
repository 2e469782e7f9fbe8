"""`make bench`: how close VaDE's training and evaluation run to the bare network on this machine.

Every throughput figure is set beside two rooflines measured in the same process on the same shapes:
the same encoder + decoder Linear/ReLU stack, a plain BCE on a pre-made batch, fused Adam, nothing
else, once in float32 and once under bf16 autocast. A ratio near 1 against the roofline of the same
precision means the GMM terms, the data path and the loop cost little; the ratio against the float32
one is what bf16 buys.

    (a) pretrain_step  autoencoder pretraining steps (index slices of one permutation, loss, Adam)
    (b) vade_step      VaDE training steps on the negative ELBO, with the real optimiser
    (c) eval_pass      `run.evaluate` over the whole dataset, beside a bare encoder pass over it
    (d) digits run     epochs of a default `vade-run` (digits data, default network and train config,
                       its time-based checkpoint policy) through the real loop (`train.fit`: shuffling,
                       metrics, metrics.jsonl, checkpoint), beside the same steps bare: the bookkeeping,
                       projected to the default run's full length
    (e) memory         peak RSS of a subprocess holding the full dataset, the model, a few training
                       steps, one checkpoint and one eval pass

Precision follows `device.amp_bf16` (--amp-bf16, default auto: on for CUDA and for CPUs with native
bf16) and is applied to (a)-(e) exactly as a run applies it (`vade_cli.device.Compute.autocast`); --compile
sets `device.compile` (CUDA or CPU) for the VaDE steps, the real loop and the rooflines, as `train.fit`
applies it. Timed contenders are interleaved repeat by repeat, so load from other jobs hits all of
them alike: throughputs are medians over repeats, and ratios (to a roofline, of the loop to its bare
steps) are the median of each repeat's own ratio, which cancels a slow stretch that both halves saw.
Results go to stdout (a table) and to bench.json.

    python -m vade_cli.bench [--device cpu|cuda|auto] [--amp-bf16 auto|true|false] [--compile]
                             [--batch-sizes 100,256] [--repeats N] [--run-repeats N] [--steps N]
                             [--threads N]
                             [--quick] [--out bench.json]

Layout: `cli` (arguments, the run in order, bench.json), `settings` (the product's config, shapes),
`timing` (interleaved repeats), `contenders` (the timed work), `memory` (the subprocess probe),
`results` (figures, projections, targets, the printed table).
"""
