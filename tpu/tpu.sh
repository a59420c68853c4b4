#!/usr/bin/env bash
# A launch kit for TPU VMs and pod slices (every command acts on all workers of the slice).
#   tpu/tpu.sh create      create the slice
#   tpu/tpu.sh setup       install Python 3.12, uv, jax[tpu] and this package on every worker
#   tpu/tpu.sh sync        copy the committed code (git archive HEAD) to every worker
#   tpu/tpu.sh launch      start `flowjax train` on every worker (multi-host: jax.distributed)
#   tpu/tpu.sh logs [N]    follow worker N's log (default 0)
#   tpu/tpu.sh stop        stop training and any stale process holding the TPU
#   tpu/tpu.sh status      the slice's state and each worker's training process
#   tpu/tpu.sh ssh [N]     a shell on worker N
#   tpu/tpu.sh delete      delete the slice
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f tpu/env ]] || { echo "copy tpu/env.example to tpu/env and edit it" >&2; exit 2; }
# shellcheck source=/dev/null
source tpu/env

GC=(gcloud compute tpus tpu-vm --project "$PROJECT" --zone "$ZONE")
all() { "${GC[@]}" ssh "$TPU_NAME" --worker=all --command "$1"; }
LOG="\$HOME/$REMOTE_DIR/train.log"

case "${1:-}" in
  create)
    spot=(); [[ "$SPOT" == 1 ]] && spot=(--spot)
    "${GC[@]}" create "$TPU_NAME" --accelerator-type "$ACCELERATOR" --version "$RUNTIME" "${spot[@]}" ;;
  setup)
    all "set -e; command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh;
         export PATH=\$HOME/.local/bin:\$PATH; mkdir -p \$HOME/$REMOTE_DIR; cd \$HOME/$REMOTE_DIR;
         uv venv --python 3.12 --allow-existing .venv;
         uv pip install --python .venv/bin/python 'jax[tpu]' gcsfs" ;;
  sync)
    archive=$(mktemp --suffix .tar.gz)
    git archive --format=tar.gz -o "$archive" HEAD
    "${GC[@]}" scp "$archive" "$TPU_NAME":flowjax.tar.gz --worker=all
    rm -f "$archive"
    all "set -e; mkdir -p \$HOME/$REMOTE_DIR; tar xzf \$HOME/flowjax.tar.gz -C \$HOME/$REMOTE_DIR;
         export PATH=\$HOME/.local/bin:\$PATH; cd \$HOME/$REMOTE_DIR;
         uv pip install --python .venv/bin/python -e ." ;;
  launch)
    # Logs and metrics go to a local workdir on each worker (written by process 0 only);
    # checkpoints go to the bucket, where every worker writes its shards. A run stopped by a
    # signal exits 75 after saving (flowjax.train.guards.PREEMPTED): it is relaunched, and
    # resumes, unless `tpu.sh stop` asked for the stop (the STOP file).
    all "cd \$HOME/$REMOTE_DIR && rm -f \$HOME/runs/$RUN.STOP && nohup bash -c '
         while true; do
           .venv/bin/python -m flowjax.cli train $CONFIG --workdir \$HOME/runs/$RUN \
             --config.distributed=on --config.checkpoint.directory=$BUCKET/runs/$RUN/checkpoints \
             $OVERRIDES; status=\$?
           [ \$status -eq 75 ] && [ ! -e \$HOME/runs/$RUN.STOP ] || exit \$status
           echo \"preempted (exit 75): relaunching\"; sleep 10
         done' > $LOG 2>&1 &" ;;
  logs)
    "${GC[@]}" ssh "$TPU_NAME" --worker="${2:-0}" --command "tail -n 100 -f $LOG" ;;
  stop)
    # SIGTERM first: the loop finishes its step and saves (the STOP file keeps launch's loop
    # from relaunching it); then anything still holding the TPU.
    all "mkdir -p \$HOME/runs && touch \$HOME/runs/$RUN.STOP; pkill -TERM -f '[f]lowjax.cli train' || true;
         sleep 30; pkill -KILL -f '[f]lowjax.cli train' || true;
         sudo lsof -t /dev/accel* /dev/vfio/* 2>/dev/null | xargs -r sudo kill -9 || true" ;;
  status)
    "${GC[@]}" describe "$TPU_NAME" --format 'value(state,health)'
    all "hostname; pgrep -af '[f]lowjax.cli train' || echo 'not training'" ;;
  ssh)
    "${GC[@]}" ssh "$TPU_NAME" --worker="${2:-0}" ;;
  delete)
    "${GC[@]}" delete "$TPU_NAME" --quiet ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
