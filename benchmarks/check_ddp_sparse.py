"""Does DDP average sparse embedding gradients on gloo? Run: torchrun --standalone --nproc-per-node 2 benchmarks/check_ddp_sparse.py
(torch 2.15 on CPU: yes, both ranks print True True; NCCL has no sparse all-reduce.)"""
import torch
import torch.distributed as dist
from torch import nn
dist.init_process_group("gloo")
r = dist.get_rank()
torch.manual_seed(0)
m = nn.Sequential(nn.Embedding(50, 4, sparse=True), nn.Flatten(), nn.Linear(12, 1))
ddp = nn.parallel.DistributedDataParallel(m)
X = torch.randint(0, 50, (8, 3), generator=torch.Generator().manual_seed(10 + r))
# local gradient for comparison
m2 = nn.Sequential(nn.Embedding(50, 4, sparse=True), nn.Flatten(), nn.Linear(12, 1))
m2.load_state_dict(m.state_dict())
m2(X).sum().backward()
loc = m2[0].weight.grad.to_dense()
ddp(X).sum().backward()
g = m[0].weight.grad
allloc = [torch.zeros_like(loc) for _ in range(2)]
dist.all_gather(allloc, loc)
print(r, "sparse grad after DDP:", g.is_sparse, "equals mean of ranks:", torch.allclose(g.to_dense(), (allloc[0] + allloc[1]) / 2))
dist.destroy_process_group()
