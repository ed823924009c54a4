MODEL = "smollm2-135m-instruct"
TEMPERATURE = 0.2
MAX_NEW_TOKENS = 256
STOP = ["</answer>"]
