"""Similar-case search: a library of analysed cases, found again by image, words and findings."""
