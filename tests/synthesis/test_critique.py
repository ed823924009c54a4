"""The critic's submit_scores arguments: four integers 1-5 and notes, under the min or mean rule."""

from pipelines.synthesis.critique import validate_scores


def test_validation_of_scores():
    review, problem = validate_scores({"realism": 5.0, "specificity": 1, "verifiability": 3, "difficulty": 2})
    assert problem is None and review.scores["realism"] == 5 and review.notes == "" and review.score("min") == 1
    for bad in (6, True, "4"):
        args = {"realism": bad, "specificity": 1, "verifiability": 3, "difficulty": 2}
        assert "not an integer" in validate_scores(args)[1]
