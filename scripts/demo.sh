#!/usr/bin/env bash
# The main job, for now: scaffold the shop as a monolith and as microservices, run each
# generated project's own tests, deploy each (Docker when an engine answers, else local
# processes), ask it for recommendations, show it, take it down.
# Projects go to $AIARCH_DEMO_DIR (default .aiarch-demo/); model size $AIARCH_MODEL_SIZE (tiny).
source "$(dirname "$0")/_venv.sh"
source "$REPO/scripts/_docker.sh"
cd "$REPO"
demo="${AIARCH_DEMO_DIR:-$REPO/.aiarch-demo}"
size="${AIARCH_MODEL_SIZE:-tiny}"
for arch in monolith microservices; do
  project="$demo/$arch"
  [ -f "$project/aiarch.yaml" ] && aiarch down -p "$project" >/dev/null 2>&1 || true
  echo "== aiarch new shop-$arch --arch $arch --model-size $size"
  aiarch new "shop-$arch" --arch "$arch" --model-size "$size" --dir "$project" --force
  echo "== $project: the project's own tests"
  (cd "$project" && python -m pytest -q -p no:cacheprovider)
  echo "== aiarch up ($arch)"
  trap 'aiarch down -p "$project" >/dev/null 2>&1' EXIT
  aiarch up -p "$project"
  entry="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["entry_url"])' "$project/.aiarch/deployment.json")"
  echo "== POST $entry/recommend {\"user_id\": 7, \"k\": 3}"
  python -c 'import httpx, json, sys; r = httpx.post(sys.argv[1] + "/recommend", json={"user_id": 7, "k": 3}, timeout=10); r.raise_for_status(); [print(f"  {i[\"score\"]:.4f}  {i[\"name\"]} ({i[\"category\"]}, {i[\"price\"]})") for i in r.json()["items"]]' "$entry"
  aiarch ps -p "$project"
  aiarch down -p "$project"
  trap - EXIT
done
echo "== done: one set of modules, two architectures; each passed its own tests and served on 127.0.0.1 ($demo)"
