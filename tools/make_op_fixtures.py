#!/usr/bin/env python3
"""Reference values for the operations ConvNeXt and the vision transformers add to the
model description (issue 20): layer norm over channels, GELU (erf form), grouped and
depthwise convolution, pointwise linear layers (weights stored as (out, in) or as a 1x1
convolution's (out, in, 1, 1)) and layer scale, each computed by PyTorch in float64 on
small random inputs.

Writes Tests/Fixtures/ops/ops.json: a list of cases, each with the operation's
parameters, its tensors by state_dict key (flat, row-major), the input (N x C x H x W)
and the expected output. Tests/DepthLensTests/OperationTests.swift runs every case
through the reference kernels.

Run: python3 tools/make_op_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "ops", "ops.json")


def flat(t):
    return [round(float(v), 12) for v in t.detach().reshape(-1).tolist()]


def case(name, op, x, y, tensors):
    return {"name": name, "op": op, "input_shape": list(x.shape), "input": flat(x),
            "output_shape": list(y.shape), "output": flat(y), "tensors": {k: {"shape": list(v.shape), "values": flat(v)}
                                                                              for k, v in tensors.items()}}


def main():
    g = torch.Generator().manual_seed(2020)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    cases = []
    # Layer norm over channels (LayerNorm2d / channels-last LayerNorm), timm's eps 1e-6 and PyTorch's 1e-5;
    # an offset input shows the variance is of the deviations (a mean of 30 against a spread of 1).
    for eps, offset, shape in [(1e-6, 0.0, (2, 5, 3, 4)), (1e-5, 30.0, (1, 7, 1, 6)), (1e-6, 0.0, (3, 16, 2, 2))]:
        x = r(*shape) + offset
        c = shape[1]
        w, b = r(c), r(c)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), w, b, eps).permute(0, 3, 1, 2)
        cases.append(case(f"layer_norm_c{c}_eps{eps}", {"kind": "layer_norm", "key": "norm", "channels": c, "eps": eps},
                          x, y, {"norm.weight": w, "norm.bias": b}))
    # GELU, exact: the tails and zero included.
    x = torch.cat([torch.linspace(-8, 8, 33, dtype=torch.float64), r(31)]).reshape(1, 2, 4, 8)
    cases.append(case("gelu", {"kind": "gelu"}, x, F.gelu(x), {}))
    # Grouped and depthwise convolutions.
    for (cin, cout, groups, k, stride, pad, size, bias) in [(6, 4, 2, 3, 2, 1, 7, True), (5, 5, 5, 7, 1, 3, 9, True),
                                                            (4, 8, 4, 3, 1, 1, 5, False), (3, 6, 1, 2, 2, 0, 6, True)]:
        x = r(2, cin, size, size)
        w = r(cout, cin // groups, k, k)
        bvec = r(cout) if bias else None
        y = F.conv2d(x, w, bvec, stride=stride, padding=pad, groups=groups)
        tensors = {"conv.weight": w}
        if bias:
            tensors["conv.bias"] = bvec
        cases.append(case(f"conv_{cin}_{cout}_g{groups}_k{k}_s{stride}", {
            "kind": "convolution", "key": "conv", "in": cin, "out": cout, "kernel": k, "stride": stride, "padding": pad,
            "bias": bias, "groups": groups}, x, y, tensors))
    # Pointwise linear: nn.Linear on channels-last, or a 1x1 convolution's weights; with and without bias.
    for (cin, cout, conv_weight, bias, shape) in [(5, 7, False, True, (2, 5, 3, 3)), (6, 3, True, True, (1, 6, 2, 5)),
                                                  (4, 4, False, False, (1, 4, 1, 9))]:
        x = r(*shape)
        w = r(cout, cin)
        bvec = r(cout) if bias else None
        y = F.linear(x.permute(0, 2, 3, 1), w, bvec).permute(0, 3, 1, 2)
        tensors = {"fc.weight": w.reshape(cout, cin, 1, 1) if conv_weight else w}
        if bias:
            tensors["fc.bias"] = bvec
        cases.append(case(f"pointwise_{cin}_{cout}_{'conv' if conv_weight else 'linear'}_{'bias' if bias else 'nobias'}",
                          {"kind": "pointwise_linear", "key": "fc", "in": cin, "out": cout, "bias": bias,
                           "convolution_weight": conv_weight}, x, y, tensors))
    # Layer scale: x * gamma per channel.
    x = r(2, 6, 3, 2)
    gamma = r(6)
    cases.append(case("layer_scale", {"kind": "layer_scale", "key": "blocks.0.gamma", "channels": 6}, x,
                      x * gamma.reshape(1, -1, 1, 1), {"blocks.0.gamma": gamma}))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/make_op_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {OUT}: {len(cases)} cases, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
