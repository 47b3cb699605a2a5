

*
ÿ body