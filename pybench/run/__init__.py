"""What every command stands on: the checks before a run (`checks`), its life (`life`: results
folder, header, one job in a worker, interruptions), the process boundary (`worker`), what a
worker runs (`jobs`, `bench`), what "the same" means in numbers (`fidelity`), and where a
sweep's runs execute (`executors`). Nothing here imports a command or a framework at import
time; frameworks are imported only inside a worker.
"""
