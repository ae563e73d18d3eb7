"""Optional integrations with other libraries' training loops (each needs its extra).

    groktransfer.integrations.hf          Hugging Face Trainer callbacks   (pip install -e ".[hf]")
    groktransfer.integrations.lightning   Lightning callbacks              (pip install -e ".[lightning]")
"""
