"""Articles and their tags."""


class Article:
    def __init__(self, title, tags=[]):
        self.title = title
        self.tags = tags

    def add_tag(self, tag):
        tag = tag.strip().lower()
        if tag and tag not in self.tags:
            self.tags.append(tag)


def articles_with_tag(articles, tag):
    """The articles carrying ``tag`` (compared case-insensitively), in the order given."""
    tag = tag.strip().lower()
    return [a for a in articles if tag in a.tags]
