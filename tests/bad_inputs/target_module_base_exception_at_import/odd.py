raise BaseException('nope')
