"""The default end-of-attempt survey (version 1 of "default"). Staff change it in the admin."""

TITLE = "After your attempt"

YES_PARTLY_NO = ["yes", "partly", "no"]

QUESTIONS = [
    {"id": "score_matched", "type": "choice", "choices": YES_PARTLY_NO, "required": True,
     "text": "Did your final score match your expectations?"},
    {"id": "score_matched_why", "type": "text", "required": False,
     "text": "Why, or why not?", "help": "What did you expect, and what surprised you?"},
    {"id": "difficulty", "type": "likert", "required": True, "text": "How hard was the task?",
     "choices": ["Very easy", "Easy", "Moderate", "Hard", "Very hard"]},
    {"id": "setup_minutes", "type": "number", "required": True, "min": 0, "max": 1440,
     "text": "About how many minutes went to setup or infrastructure problems?",
     "help": "Time lost to the machine, tools or environment rather than the task itself."},
    {"id": "prior_experience", "type": "likert", "required": True,
     "text": "How much prior experience do you have with this kind of task?",
     "choices": ["None", "A little", "Some", "A lot", "It is my daily work"]},
    {"id": "more_time", "type": "text", "required": False, "text": "What would you do with more time?"},
    {"id": "broken", "type": "choice", "choices": YES_PARTLY_NO, "required": True,
     "text": "Was anything broken or unclear?"},
    {"id": "broken_details", "type": "text", "required": False, "text": "If so, what?"},
]
