"""The CommerceML 2 exchange with 1C, served as 1C-Bitrix serves it."""
