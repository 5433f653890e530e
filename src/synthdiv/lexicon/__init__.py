"""Word knowledge with no model: WordNet nouns and senses (``wordnet``) and how related two senses are
(``relatedness``)."""
