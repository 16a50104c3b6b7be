"""The plain PyTorch script that `dlx train` replaces, on the same data and model as its defaults.

    python benchmarks/plain_digits.py [EPOCHS]      # default 1 epoch

scikit-learn's 8x8 digits (pixels / 16), an 80/20 stratified split (random_state=42), the digits
CNN (conv32-pool-conv64-pool-fc128-out), Adam lr 1e-3, batch 32, seed 42, on the GPU when there
is one (as dlx's trainer.device=auto). Prints each epoch's train loss, then the test accuracy,
and saves the weights to ./model.pt. No tracking, no config: the baseline of
benchmarks/process_race.py, written as a tutorial would write it.
"""

import sys

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.manual_seed(42)
device = "cuda" if torch.cuda.is_available() else "cpu"

digits = load_digits()
x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
y = torch.tensor(digits.target, dtype=torch.long)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)

model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 2 * 2, 128), nn.ReLU(), nn.Linear(128, 10),
).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(EPOCHS):
    model.train()
    total = 0.0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    print(f"epoch {epoch + 1}/{EPOCHS}: train loss {total / len(loader.dataset):.4f}")

model.eval()
with torch.no_grad():
    predictions = model(x_test.to(device)).argmax(dim=1).cpu()
print(f"test accuracy: {(predictions == y_test).float().mean().item():.4f}")

torch.save(model.state_dict(), "model.pt")
