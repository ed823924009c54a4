MODEL = "smollm2-135m-instruct"
TEMPERATURE = 0.7
MAX_NEW_TOKENS = 256
STOP = ["</answer>"]
