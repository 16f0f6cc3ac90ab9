"""Run the provider simulators until Ctrl-C, for a person trying the product.

    python -m tests.simulators --stability-port 8101 --modelslab-port 8102 --aimlapi-port 8103 \
        --akool-port 8104 --time-scale 1 --run-seconds 20

Keys come from STABILITY_API_KEY / MODELSLAB_API_KEY / AIML_API_KEY and AKOOL_CLIENT_ID /
AKOOL_CLIENT_SECRET (defaults below), so the product's own settings can be pointed at the
printed base URLs. Every request, webhook and contract violation is printed as it happens.
"""

import argparse
import os
import signal
import threading

from .aimlapi import AimlApiSimulator, AimlPlan
from .akool import ACCOUNT_PLANS, AkoolPlan, AkoolSimulator
from .common import Plan, print_line
from .modelslab import QUEUE_LIMITS, ModelsLabSimulator
from .stability import StabilitySimulator


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.simulators", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--stability-port", type=int, default=8101)
    parser.add_argument("--modelslab-port", type=int, default=8102)
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies every documented duration"
    )
    parser.add_argument(
        "--run-seconds", type=float, default=20.0, help="how long each job runs (documented s)"
    )
    parser.add_argument("--modelslab-plan", choices=tuple(QUEUE_LIMITS), default="basic")
    parser.add_argument("--aimlapi-port", type=int, default=8103)
    parser.add_argument("--akool-port", type=int, default=8104)
    parser.add_argument("--akool-plan", choices=ACCOUNT_PLANS, default="pro")
    args = parser.parse_args(argv)

    stability = StabilitySimulator(
        os.environ.get("STABILITY_API_KEY", "sim-stability-key"),
        time_scale=args.time_scale,
        host=args.host,
        port=args.stability_port,
    )
    modelslab = ModelsLabSimulator(
        os.environ.get("MODELSLAB_API_KEY", "sim-modelslab-key"),
        plan=args.modelslab_plan,
        time_scale=args.time_scale,
        host=args.host,
        port=args.modelslab_port,
    )
    aimlapi = AimlApiSimulator(
        os.environ.get("AIML_API_KEY", "sim-aimlapi-key"),
        time_scale=args.time_scale,
        host=args.host,
        port=args.aimlapi_port,
    )
    akool = AkoolSimulator(
        os.environ.get("AKOOL_CLIENT_ID", "sim-akool-client"),
        os.environ.get("AKOOL_CLIENT_SECRET", "sim-akool-secret-0123456789abcde"),
        plan=args.akool_plan,
        time_scale=args.time_scale,
        host=args.host,
        port=args.akool_port,
    )
    simulators = (stability, modelslab, aimlapi, akool)
    plans = {aimlapi: AimlPlan, akool: AkoolPlan}
    for sim in simulators:
        sim.default_plan = plans.get(sim, Plan)(run_seconds=args.run_seconds)
        sim.on_event = print_line(f"[{sim.name}]")
        sim.on_violation = print_line(f"[{sim.name}] VIOLATION:")
        sim.start()
    print(f"Stability (EZLink) simulator: {stability.base_url}", flush=True)
    print(f"ModelsLab simulator:          {modelslab.base_url}", flush=True)
    print(f"AI/ML API (Kling) simulator:  {aimlapi.base_url}", flush=True)
    print(f"AKOOL simulator:              {akool.base_url} (token: {akool.token_url})", flush=True)
    print("Open either address without a path for a summary. Ctrl-C stops.", flush=True)
    stopped = threading.Event()
    # SIGTERM too (e.g. from honcho or a process manager), not only Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sim in simulators:
            sim.stop()
            print(f"[{sim.name}] {len(sim.violations)} violation(s)", flush=True)


if __name__ == "__main__":
    main()
