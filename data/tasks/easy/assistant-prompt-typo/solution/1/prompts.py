SYSTEM_PROMPT = "You are a helpful assistant. Answer in one short paragraph."
MAX_TURNS = 6
