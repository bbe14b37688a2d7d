#!/usr/bin/env bash
# The main job, for now: scaffold the shop as a monolith and as microservices, then run each
# generated project's own tests. Projects go to $AIARCH_DEMO_DIR (default .aiarch-demo/).
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
demo="${AIARCH_DEMO_DIR:-$REPO/.aiarch-demo}"
size="${AIARCH_MODEL_SIZE:-tiny}"
for arch in monolith microservices; do
  echo "== aiarch new shop-$arch --arch $arch --model-size $size"
  aiarch new "shop-$arch" --arch "$arch" --model-size "$size" --dir "$demo/$arch" --force
  echo "== $demo/$arch: the project's own tests"
  (cd "$demo/$arch" && python -m pytest -q -p no:cacheprovider)
done
echo "== done: both architectures generated from one set of modules, and each passes its own tests ($demo)"
