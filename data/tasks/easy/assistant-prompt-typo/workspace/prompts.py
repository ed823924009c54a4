SYSTEM_PROMPT = "You are a helpfull assistant. Answer in one short paragraph."
MAX_TURNS = 6
