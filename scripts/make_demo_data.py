#!/usr/bin/env python3
"""Generate the small built-in demo dataset used by ``mtsent demo``.

Everything here is hand-written for this project: fixed sentences plus templates whose slots are
filled from hand-written lists (people, companies, clubs, cities, countries, products...). No
public dataset is downloaded or copied. Company, person and most club names are invented or used
in neutral, generic contexts; the sentences do not report real events.

Outputs (in ``src/mtsent/resources/demo/``):

* ``topic.tsv``      -- ``text<TAB>label``, 60 sentences each of World, Sports, Business, Sci/Tech.
* ``sentiment.tsv``  -- ``text<TAB>label``, 120 negative and 120 positive review sentences.
* ``ner.conll``      -- ``token TAG`` (IOB2; PER, ORG, LOC, MISC), blank line between sentences.
* ``examples.txt``   -- 8 unseen sentences for the demo to predict on.

The output is deterministic (fixed seed, no dependence on hash order) and is validated before it
is written. Run from anywhere::

    python scripts/make_demo_data.py
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

SEED = 13
PER_CLASS = 60  # topic sentences per label
PER_POLARITY = 120  # sentiment sentences per label
NER_SENTENCES = 240
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "mtsent" / "resources" / "demo"

# A slot is `{name}` or `{name2}` (a second, different value from the same list); in NER templates
# `{NAME1.surname}` repeats all but the first word of the value already chosen for `{NAME1}`.
_SLOT = re.compile(r"\{([A-Za-z_]+?)(\d*)(\.surname)?\}")

# The data tables below are laid out by hand; keep the formatter off them.
# fmt: off
# ============================================================================================ TOPIC

WORLD_FIXED = [
    "Thousands of protesters marched through the capital on Sunday demanding early elections.",
    "The United Nations called for an immediate ceasefire after a week of heavy shelling near the border.",
    "Flooding in the southern provinces has forced more than 20,000 people from their homes.",
    "Foreign ministers from the two countries met in Geneva to resume stalled peace talks.",
    "Rescue teams are still searching for survivors after a strong earthquake struck the coastal region.",
    "The opposition leader was detained at the airport shortly after returning from exile.",
    "Voters head to the polls on Sunday in a tightly contested presidential runoff.",
    "Aid agencies warn that food supplies in the refugee camps could run out within two weeks.",
    "Parliament approved a constitutional amendment extending presidential term limits.",
    "Police fired tear gas to disperse crowds gathered outside the electoral commission.",
    "The prime minister survived a no-confidence vote by a margin of just four votes.",
    "Gunmen attacked a military checkpoint overnight, killing six soldiers, officials said.",
    "Leaders at the regional summit pledged to cooperate on migration and border security.",
    "The embassy has advised its citizens to leave the country as fighting spreads to the north.",
    "A car bomb exploded near a busy market, wounding at least a dozen people.",
    "The government declared a state of emergency after wildfires reached the outskirts of the city.",
    "Negotiators reached a tentative deal to release dozens of prisoners held on both sides.",
    "The ruling coalition collapsed after its junior partner walked out over a corruption scandal.",
    "Hundreds of migrants were rescued from overcrowded boats in the Mediterranean this week.",
    "The president dissolved parliament and called a snap election for next spring.",
    "Peacekeepers were deployed to the disputed region following clashes between rival militias.",
    "A cyclone made landfall early on Friday, cutting power to much of the eastern coast.",
    "The foreign ministry summoned the ambassador to protest the arrest of two journalists.",
    "The supreme court annulled the election results and ordered a new vote within sixty days.",
    "Rebels seized control of a key provincial town after days of fighting.",
    "The two neighbours agreed to restore diplomatic relations after a decade-long rift.",
    "Election observers reported widespread irregularities at polling stations in the north.",
    "The former president was sentenced to seven years in prison for corruption.",
    "A ferry carrying more than 300 passengers capsized in a storm off the southern coast.",
    "The military government imposed a nightly curfew in the capital.",
    "Lawmakers voted to lower the voting age to sixteen ahead of next year's election.",
    "The refugee agency said the number of displaced people had reached a record high.",
]
WORLD_TEMPLATES = [
    "{country} and {country2} signed an agreement to reopen their shared border after {years} years.",
    "The government of {country} recalled its ambassador from {country2} over an espionage row.",
    "Election officials in {country} said turnout in the first round reached {turnout} percent.",
    "Heavy rains triggered landslides in northern {country}, leaving dozens of people missing.",
    "Talks between {coastal} and {coastal2} on their disputed maritime boundary ended without agreement.",
    "Thousands rallied in {city} against a proposed law restricting street protests.",
    "The foreign minister of {country} arrived in {city} for talks on the refugee crisis.",
    "Opposition parties in {country} will boycott next month's parliamentary election.",
    "Troops from {country} began withdrawing from the border under a ceasefire brokered in {city}.",
    "A powerful earthquake struck off the coast of {coastal}, prompting a tsunami warning.",
    "{country} expelled {small} diplomats accused of spying, deepening its dispute with {country2}.",
    "Human rights groups urged {country} to free activists detained during last week's protests.",
]

SPORTS_FIXED = [
    "The striker scored twice in the second half as the home side came back from two goals down.",
    "The veteran goalkeeper announced his retirement after 18 seasons in the top flight.",
    "Rain delayed the start of the final day, but the visitors still completed a seven-wicket win.",
    "The 19-year-old sprinter set a new national record in the 100 metres.",
    "The coach was sacked on Monday after a run of six straight defeats.",
    "She saved three match points before winning the deciding set on a tie-break.",
    "The quarterback threw for 320 yards and three touchdowns in the season opener.",
    "A late penalty earned the champions a 1-1 draw away from home.",
    "The marathon was won in a course record despite strong headwinds over the final 10 kilometres.",
    "The club confirmed that its captain will miss the rest of the season with a knee injury.",
    "He sank a 15-foot birdie putt on the final hole to win the tournament by one stroke.",
    "The defending champion crashed out in the second round in straight sets.",
    "The team clinched the league title with three games to spare.",
    "Fans invaded the pitch after the underdogs knocked out the cup holders on penalties.",
    "The point guard scored 41 points, including the winning basket with two seconds left.",
    "The cyclist attacked on the last climb and held on to take the mountain stage.",
    "The midfielder has signed a four-year contract after passing his medical.",
    "The swimmer won her third gold medal of the championships in the 200 metres freestyle.",
    "The race was stopped on lap 12 after a multi-car crash at the first corner.",
    "The boxer retained his heavyweight title with a unanimous points decision.",
    "Both teams finished with ten men after a bad-tempered second half.",
    "The rookie pitcher struck out 11 batters in seven scoreless innings.",
    "The referee awarded a try in the final minute to seal a narrow win for the visitors.",
    "The skier finished just five hundredths of a second ahead of her teammate in the downhill.",
    "The home crowd booed as their side slipped to a third straight defeat.",
    "The Olympic champion was beaten in the heats and failed to reach the final.",
    "The batsman hit an unbeaten century to rescue his side from a poor start.",
    "The grand slam winner said she would take a break from tennis to recover from injury.",
    "The goalkeeper saved two penalties in the shootout to send his team into the final.",
    "The manager admitted his team had been outplayed from the first whistle.",
    "The driver took pole position by a tenth of a second in a wet qualifying session.",
    "The league fined the club for fielding an ineligible player.",
]
SPORTS_TEMPLATES = [
    "{club} beat {club2} {score} to move top of the table.",
    "{club} and {club2} played out a goalless draw in front of {crowd} fans.",
    "{player} scored a hat-trick as {club} thrashed {club2} {bigscore}.",
    "{player} withdrew from the {tournament} with a shoulder injury.",
    "{club} have appointed {player} as head coach on a three-year deal.",
    "{player} won the {tournament} after beating the top seed in the final.",
    "{country} qualified for the World Cup with a {score} win over {country2}.",
    "{player} broke the world record in the {race} at the meeting in {city}.",
    "{club} signed the {nat} forward {player} for a club record fee.",
    "An injury-time winner from {player} kept {club} in the title race.",
    "{club} were knocked out of the cup after losing {score} at home to {club2}.",
    "{player} finished fourth in the {race}, missing a medal by a hundredth of a second.",
]

BUSINESS_FIXED = [
    "Oil prices rose for a third straight session on worries about tight supplies.",
    "The central bank left interest rates unchanged but signalled a cut later this year.",
    "Shares of the carmaker slumped 9 percent after it warned of weaker profits.",
    "The retailer plans to close 120 stores and cut about 3,000 jobs by the end of the year.",
    "Inflation eased to 2.8 percent in March, its lowest level in two years.",
    "The airline reported a quarterly loss as fuel costs and strikes weighed on earnings.",
    "The merger would create the country's largest supermarket chain by sales.",
    "Unemployment fell to 4.1 percent as employers added more jobs than expected.",
    "The dollar weakened against the euro after disappointing retail sales figures.",
    "The company agreed to pay a $40 million fine to settle accusations of price fixing.",
    "Gold hit a record high as investors sought safety from market turmoil.",
    "The bank raised its full-year revenue forecast on strong demand for mortgages.",
    "Factory output shrank for the fifth month in a row, a survey showed.",
    "Shareholders rejected the chief executive's proposed pay package at the annual meeting.",
    "The steelmaker filed for bankruptcy protection after talks with creditors broke down.",
    "Consumer spending rose 0.6 percent in July, driven by car and furniture sales.",
    "The government sold its remaining stake in the lender, raising about 2 billion euros.",
    "Wheat futures jumped after drought damaged crops across the plains.",
    "The brewer agreed to buy a smaller rival in a deal valued at $5.3 billion.",
    "The trade deficit widened sharply as imports of energy and machinery surged.",
    "House prices fell for the first time in a year as higher borrowing costs hit demand.",
    "Stocks closed lower on Friday, with banks and energy companies leading the decline.",
    "The union called off the strike after the company offered a 7 percent pay rise.",
    "The startup raised $85 million in new funding, valuing it at over $1 billion.",
    "The chipmaker's shares hit a record after it forecast booming demand.",
    "The company will raise prices by 5 percent to cover higher energy costs.",
    "Mortgage rates climbed to their highest level since the financial crisis.",
    "The online retailer posted its first annual profit since going public.",
    "The regulator fined the bank for failing to prevent money laundering.",
    "Natural gas prices fell sharply as a mild winter reduced demand for heating.",
    "The supermarket group reported flat sales as shoppers switched to cheaper brands.",
    "Private equity firms are circling the struggling department store chain.",
]
BUSINESS_TEMPLATES = [
    "{company} said third-quarter profit rose {profit} percent on higher sales in {region}.",
    "Shares in {company} fell {drop} percent after the company cut its annual outlook.",
    "{company} agreed to buy {company2} for ${money} billion in cash and stock.",
    "{company} will cut {jobs} jobs as part of a cost-saving plan announced on {day}.",
    "Regulators in {country} opened an antitrust investigation into {company}.",
    "{company} named a new chief financial officer after the sudden departure of its predecessor.",
    "The {nat} economy grew {gdp} percent in the second quarter, beating forecasts.",
    "{company} plans to list its shares on the stock exchange in {city} later this year.",
    "Annual inflation in {country} slowed to {gdp} percent, giving the central bank room to cut rates.",
    "{company} reported record revenue but warned that rising costs would squeeze margins.",
    "Investors dumped {company} bonds after a credit rating downgrade.",
    "{company} will invest ${money} billion in a new plant in {country} over five years.",
]

SCITECH_FIXED = [
    "Researchers have developed a battery that charges to 80 percent in under ten minutes.",
    "The space agency postponed the rocket launch because of a fuel leak.",
    "A new study suggests that the ancient lake held water for millions of years longer than thought.",
    "The software update fixes a security flaw that let attackers take over devices remotely.",
    "Astronomers spotted a planet orbiting in the habitable zone of a nearby red dwarf star.",
    "The chipmaker unveiled a processor designed specifically for training AI models.",
    "Hackers stole the personal data of nearly two million customers, the company said.",
    "Scientists used gene editing to make rice plants more resistant to drought.",
    "The smartphone maker will stop releasing security updates for its older models next year.",
    "A telescope captured the most detailed image yet of the black hole at the centre of a galaxy.",
    "The new browser version blocks tracking cookies by default.",
    "Engineers tested a quantum computer that kept its qubits stable for a record time.",
    "The probe sent back its first close-up pictures of the icy moon.",
    "Fossils found in a quarry reveal a feathered dinosaur the size of a turkey.",
    "The open-source project released a language model small enough to run on a laptop.",
    "A faulty update caused millions of computers to crash and left airports struggling to check in passengers.",
    "Researchers trained a robot hand to solve puzzles using only its sense of touch.",
    "The vaccine showed 90 percent efficacy in a late-stage clinical trial.",
    "The satellite will map sea levels across the globe with centimetre precision.",
    "Climate scientists say the past decade was the warmest on record.",
    "The social network is testing a feature that lets users edit posts after publishing.",
    "Physicists measured the mass of the particle with unprecedented precision.",
    "A new algorithm compresses video files to half their size without visible loss of quality.",
    "The crew aboard the space station completed a six-hour spacewalk to replace a faulty pump.",
    "A new mobile chip promises to run AI features without draining the battery.",
    "Researchers discovered a new species of frog in a remote rainforest.",
    "The lunar lander touched down near the south pole of the moon.",
    "A study of ten thousand volunteers links poor sleep to higher blood pressure.",
    "The messaging app fixed a bug that exposed the phone numbers of its users.",
    "Engineers are building the largest offshore wind turbine ever designed.",
    "A solar storm disrupted radio signals and produced bright auroras far from the poles.",
    "Developers can now build apps for the headset using a free toolkit.",
]
SCITECH_TEMPLATES = [
    "{techco} released a new version of its {software} with stronger privacy controls.",
    "Researchers at {univ} built a {device} that {capability}.",
    "{techco} patched a vulnerability in its {software} that hackers were actively exploiting.",
    "A team at {univ} found that {finding}.",
    "{techco} is rolling out end-to-end encryption to all users of its messaging app.",
    "Scientists at {univ} sequenced the genome of the {organism}.",
    "{techco} unveiled a foldable {gadget} at its developer conference.",
    "Astronomers using a space telescope detected {astro}.",
    "An outage at {techco} left millions of people unable to use its {software} for several hours.",
    "Engineers at {univ} demonstrated a chip that uses light instead of electricity to move data.",
    "{techco} says its new AI assistant can {ai_task}.",
    "The new {gadget} from {techco} uses a chip that {chip_feature}.",
]

TOPIC_SLOTS: dict[str, list[str]] = {
    "country": [
        "Kenya", "Peru", "Indonesia", "Ukraine", "Nigeria", "Chile", "Pakistan", "Bolivia", "Ethiopia",
        "Serbia", "Colombia", "Sri Lanka", "Sudan", "Mali", "Armenia", "Azerbaijan",
        "Ecuador", "Myanmar", "Lebanon", "Thailand", "Venezuela", "Mexico", "Turkey", "Egypt", "Brazil",
        "Japan", "India", "Poland", "Italy", "Spain", "Argentina", "Vietnam", "Morocco", "Ghana", "Nepal",
    ],
    "city": [
        "Nairobi", "Lima", "Jakarta", "Bogota", "Cairo", "Istanbul", "Warsaw", "Madrid", "Geneva", "Vienna",
        "Buenos Aires", "Manila", "Bangkok", "Lagos", "Oslo", "Helsinki", "Doha", "Addis Ababa", "Seoul",
    ],
    "years": ["three", "five", "seven", "ten", "twelve", "two"],
    "coastal": ["Peru", "Indonesia", "Chile", "Japan", "Mexico", "Ecuador", "Vietnam", "Morocco", "Ghana",
                "Colombia", "Sri Lanka", "Turkey", "Italy", "Thailand", "Nigeria", "Brazil"],
    "turnout": ["41", "58", "63", "72", "67", "54", "49"],
    "profit": ["4", "7", "12", "18", "23", "9"],
    "drop": ["3", "5", "8", "11", "14", "6"],
    "small": ["two", "three", "four", "five", "eight", "ten"],
    "club": [
        "Leeds", "Porto", "Lyon", "Napoli", "Celtic", "Ajax", "Benfica", "Sevilla", "Everton", "Feyenoord",
        "Galatasaray", "Boca Juniors", "River Plate", "Bayern Munich", "Real Betis", "Aston Villa",
        "Marseille", "Dortmund", "Atalanta", "Rangers", "Anderlecht", "Sporting",
    ],
    "score": ["2-1", "1-0", "3-2", "2-0", "3-1", "4-2"],
    "bigscore": ["5-0", "6-1", "4-0", "5-2"],
    "crowd": ["40,000", "52,000", "18,000", "61,000", "25,000"],
    "player": [
        "Diego Ramos", "Lena Fischer", "Tomas Novak", "Amara Diallo", "Kenji Mori", "Sofia Marin",
        "Luca Ferri", "Jonah Price", "Ines Duarte", "Ivan Petrov", "Nia Owusu", "Mateo Silva",
        "Erik Lund", "Chloe Martin", "Hugo Lefevre", "Ravi Menon", "Paulo Reis", "Anya Volkova",
    ],
    "tournament": [
        "Australian Open", "Madrid Open", "Italian Open", "world championship", "Masters event in Miami",
        "grass-court event in Halle", "indoor title in Rotterdam",
    ],
    "race": ["100 metres", "400 metres hurdles", "3,000 metres steeplechase", "pole vault", "long jump",
             "200 metres", "1,500 metres"],
    "nat": ["Brazilian", "Nigerian", "Japanese", "Dutch", "Mexican", "Polish", "Argentine", "Ghanaian",
            "Swedish", "Korean", "Portuguese", "German", "Canadian", "Chilean"],
    "company": [
        "Northwind Logistics", "Altamira Energy", "Kestrel Bank", "Bluefin Foods", "Solaris Motors",
        "Helix Pharmaceuticals", "Meridian Airlines", "Vantage Telecom", "Orion Steel", "Caldera Mining",
        "Brightwater Insurance", "Atlas Shipping", "Redwood Capital", "Ironbridge Construction",
        "Greenfield Agritech", "Harbor Retail Group", "Summit Paper", "Crescent Hotels",
    ],
    "region": ["Asia", "Europe", "Latin America", "North America", "the Middle East", "Africa"],
    "money": ["1.2", "3.4", "2.75", "6", "11", "4.8", "0.9"],
    "jobs": ["1,200", "800", "4,500", "2,000", "650", "9,000"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "gdp": ["0.4", "1.1", "2.3", "0.8", "3.1", "1.7", "2.9"],
    "techco": [
        "Pixelforge", "Quantica", "Nimbus Software", "Lumen Devices", "Cobalt Systems", "Bytewave",
        "Arcadia Labs", "Vertex Robotics", "Sparrow Networks", "Polaris Computing",
    ],
    "software": ["operating system", "web browser", "photo app", "cloud storage service", "email service",
                 "password manager", "video calling app"],
    "univ": [
        "the University of Leeds", "Kyoto University", "ETH Zurich", "the University of Toronto",
        "Tsinghua University", "the University of Cape Town", "Stanford University", "Delft University",
        "the University of Sao Paulo", "Seoul National University",
    ],
    "device": ["soft robot", "wearable sensor", "solar panel", "tiny drone", "water filter", "prosthetic hand"],
    "capability": [
        "can climb walls like a gecko", "detects dehydration from sweat", "pulls drinking water from desert air",
        "folds itself from a flat sheet", "turns waste heat into electricity", "lets users feel texture again",
    ],
    "finding": [
        "octopuses appear to dream during active sleep",
        "microplastics are present in fresh snow on remote mountains",
        "a common soil bacterium can break down a type of plastic",
        "bees can learn to count up to four",
        "sea ice in the Arctic is thinning faster than climate models predicted",
        "a single gene controls the colour pattern on butterfly wings",
        "a protein in blood predicts heart disease years before symptoms",
    ],
    "organism": ["axolotl", "giant tortoise", "tardigrade", "coffee plant", "honeybee", "sea anemone",
                 "wheat plant", "naked mole-rat"],
    "gadget": ["phone", "tablet", "laptop"],
    "astro": [
        "water vapour in the atmosphere of a distant planet",
        "the oldest galaxy yet observed",
        "a pair of supermassive black holes on a collision course",
        "a comet that may have come from another star system",
        "carbon-rich molecules in a disc around a young star",
    ],
    "ai_task": [
        "summarise long documents in seconds", "translate speech in real time",
        "write and debug simple programs", "describe photos aloud for blind users",
    ],
    "chip_feature": [
        "runs speech recognition without an internet connection", "doubles battery life",
        "processes images on the device instead of in the cloud",
    ],
}

# ======================================================================================== SENTIMENT

POSITIVE_FIXED = [
    "Not bad at all, actually one of the better thrillers I have seen this year.",
    "I was not expecting much, but this blender has not let me down once.",
    "The pasta was perfectly cooked and the waiter remembered our order without writing it down.",
    "A warm, funny film with a cast that clearly enjoyed working together.",
    "The battery lasts two full days, which is more than I can say for my last phone.",
    "I have no complaints about this vacuum; it simply does its job quietly.",
    "The ending caught me completely off guard, in the best possible way.",
    "We will definitely be back for the brunch menu.",
    "It took a few days to get used to the keyboard, but now I can't imagine going back.",
    "Honestly, I don't understand the negative reviews; the sound quality is superb.",
    "Cheap, sturdy and easy to assemble, exactly what I needed.",
    "The soundtrack alone is worth the ticket price.",
    "Service was a bit slow, but the food more than made up for it.",
    "My kids have watched it five times and I still don't mind sitting through it again.",
    "Never had a bad meal here in three years of coming.",
    "It does not feel cheap at all, despite the low price.",
    "The director trusts the audience, and the quiet moments land beautifully.",
    "Shipping was fast and the headphones were even better than the photos suggested.",
    "I can't recommend this place enough.",
    "Nothing flashy, just honest cooking done really well.",
    "I hesitated because of the price, but I have zero regrets.",
    "The performances are so natural that you forget you are watching actors.",
    "Setup took five minutes and it has worked flawlessly ever since.",
    "Small portions, but every bite was worth it.",
    "The second half drags slightly, yet I left the cinema smiling.",
    "This is the first pair of running shoes that hasn't given me blisters.",
    "Not a single dish disappointed us.",
    "It is not perfect, but it is easily the best camera in this price range.",
    "A clever script that never talks down to its audience.",
    "The staff went out of their way to accommodate my nut allergy.",
    "I did not think a kettle could make me this happy.",
    "Better than the original, which I did not think was possible.",
    "You won't find a friendlier neighbourhood cafe.",
    "I would happily pay twice the price for this mattress.",
    "There is not a wasted minute in this film.",
    "Three months in and the blades are still as sharp as on day one.",
    "The chef came out to check on every table, and the lamb was outstanding.",
    "Two hours flew by; I didn't want it to end.",
    "It's a bit pricey, but the quality justifies every penny.",
    "I've owned a lot of headphones and these are the most comfortable by far.",
    "The dialogue crackles and the jokes actually land.",
    "Great coffee, cosy seats and the best croissants in town.",
    "I was sceptical about another sequel, but this one earns its place.",
    "The tent survived a night of heavy rain without a single drop getting in.",
    "Easily the most beautiful animation I have seen in years.",
    "The wine our waiter recommended was spot on.",
    "Nobody in our group had a single complaint, which never happens.",
    "It charges fast, it's light, and it just works.",
    "Not the flashiest phone, but it does everything I need without fuss.",
    "The last twenty minutes had the whole audience on the edge of their seats.",
    "Fresh ingredients, fair prices and generous portions.",
    "I didn't regret a single minute of the three-hour running time.",
    "The customer service team replaced the faulty part within two days.",
    "Far better than the reviews led me to believe.",
    "It has quietly become my favourite film of the decade.",
    "Even the bread they serve before the meal is fantastic.",
    "The build quality surprised me for something this affordable.",
    "I laughed, I cried, and I immediately bought tickets for my parents.",
    "The printer set itself up and has not jammed once.",
    "I can't fault the food or the service.",
    "A gentle, thoughtful film that stays with you for days.",
    "The sofa arrived on time and is even more comfortable than the one in the showroom.",
    "Whoever designed this can opener deserves an award.",
    "It won't win any design prizes, but it has never let me down.",
    "The tasting menu was a real treat from start to finish.",
    "Worth every minute of the long queue outside.",
]
NEGATIVE_FIXED = [
    "I really wanted to like this film, but I kept checking my watch.",
    "The trailer promised a thriller; what we got was two hours of people talking in kitchens.",
    "The charger stopped working after a week and support never replied.",
    "We waited forty minutes for cold soup.",
    "The plot makes no sense and the dialogue is painfully stiff.",
    "It looks great in the pictures, but the fabric feels like cardboard.",
    "Not worth the money, and definitely not worth the wait.",
    "The waiter was friendly, but that hardly makes up for the undercooked chicken.",
    "I have never been so bored in a cinema.",
    "The instructions were missing, and two of the screws did not fit.",
    "The sequel repeats every joke from the first film, only louder.",
    "Overpriced, overhyped and underseasoned.",
    "After two washes the shirt had shrunk by a full size.",
    "The actors do their best with a script that gives them nothing.",
    "Our table was next to the kitchen door and nobody checked on us all evening.",
    "I would not buy this again, even on sale.",
    "The app crashes every time I try to connect the speaker.",
    "The first twenty minutes are promising; the remaining ninety are not.",
    "The burger was fine, I suppose, if you enjoy eating dry bread.",
    "The screen scratched within days, despite the case.",
    "I don't think I laughed once during the whole comedy.",
    "The dessert menu looked tempting, but by then we just wanted to leave.",
    "It's not terrible, but I can't find a single reason to recommend it.",
    "Lovely packaging, shame about the product inside.",
    "The noise cancelling barely works on the train.",
    "Every twist was obvious from the first scene.",
    "They charged us for drinks we never ordered and refused to fix the bill.",
    "Not once did the battery last a full day.",
    "The special effects cannot hide how hollow the story is.",
    "Three visits, three different excuses for why our reservation was lost.",
    "It's the kind of film you forget before you reach the car park.",
    "The mattress started sagging in the middle after a month.",
    "For a place with such good reviews, the food was strangely bland.",
    "I gave it a second chance, and it was even worse.",
    "The handle came off the first time I lifted the pan.",
    "Two stars, and both are for the popcorn.",
    "The so-called fresh pasta tasted like it came out of a packet.",
    "I fell asleep halfway through and did not feel like I had missed anything.",
    "The zip broke on the first trip.",
    "After the update the phone became painfully slow.",
    "It was loud, cramped and the drinks were watered down.",
    "The jokes are recycled and the pacing is sluggish.",
    "Customer support kept me on hold for an hour and then hung up.",
    "The soup was so salty that we sent it back twice.",
    "Beautiful to look at, but there is nothing underneath the style.",
    "The colours faded after a single wash.",
    "We were rushed away from our table after barely an hour.",
    "The ending undoes everything the film had built up.",
    "It makes a terrible rattling sound whenever the fan is on.",
    "Far too expensive for what you actually get.",
    "The characters are so thin that I stopped caring about any of them.",
    "The delivery arrived a week late and the box was crushed.",
    "Nothing about the meal justified the price or the wait.",
    "The sound keeps cutting out whenever I move more than a few metres away.",
    "I wouldn't recommend it to anyone, not even as a joke.",
    "The coffee was lukewarm and the cake was stale.",
    "Halfway through, half the audience was looking at their phones.",
    "It stopped holding a charge after three months.",
    "The waiter rolled his eyes when we asked for tap water.",
    "The lead actor seems to be sleepwalking through every scene.",
    "The straps dig into your shoulders after ten minutes.",
    "What should have been a simple repair turned into a month of excuses.",
    "The portions were tiny and the bill was enormous.",
    "I kept waiting for the story to start, and it never did.",
    "The lid doesn't seal properly, so everything leaks.",
    "Not even the soundtrack could save this one.",
]
POSITIVE_TEMPLATES = [
    "The {dish} at {restaurant} was {good_food}, and the staff were {good_staff}.",
    "{film} is {good_film}, with a {good_perf} performance from the lead.",
    "This {product} is {good_product}; I use it every day.",
    "I bought the {product} as a gift and {good_gift}.",
    "Not bad at all: the {product} is sturdy and well designed.",
    "I didn't expect much from {film}, but it turned out to be {good_film}.",
    "Five stars for the {gadget}: {good_reason}.",
    "The {dish} was {good_food} and the prices were very reasonable.",
    "{film} never loses its grip; I was hooked until the final scene.",
    "If you need a reliable {product}, this one will not disappoint you.",
    "We came for the {dish} at {restaurant} and left already planning our next visit.",
    "I had my doubts about {film}, but I was wrong: it is {good_film}.",
]
NEGATIVE_TEMPLATES = [
    "The {dish} at {restaurant} was {bad_food}, and the staff were {bad_staff}.",
    "{film} is {bad_film}, and the lead performance is {bad_perf}.",
    "The {gadget} {bad_event} after {period}.",
    "I returned the {gadget} because {bad_reason}.",
    "Not impressed at all: the {product} feels flimsy and cheap.",
    "I expected a lot from {film}, but it was {bad_film}.",
    "One star for the {gadget}: {bad_reason}.",
    "The {dish} was {bad_food}, and at those prices that is not acceptable.",
    "{film} loses its way halfway through and never recovers.",
    "If you need a reliable {product}, look elsewhere.",
    "We went to {restaurant} for the {dish} and left hungry and annoyed.",
    "I do not understand the hype around {film}; it is {bad_film}.",
]
SENTIMENT_SLOTS: dict[str, list[str]] = {
    "dish": ["risotto", "ramen", "lamb curry", "fish stew", "steak", "margherita pizza", "pad thai",
             "seafood paella", "vegetable lasagna", "chocolate tart", "duck confit", "roast chicken"],
    "restaurant": ["the new place on Main Street", "this little bistro", "the hotel restaurant",
                   "the family-run trattoria near the station", "the food hall downtown", "this noodle bar"],
    "good_food": ["delicious", "full of flavour", "beautifully presented", "cooked to perfection",
                  "the best I have had in years", "fresh and generous"],
    "good_staff": ["warm and attentive", "friendly without being pushy", "quick and helpful", "lovely"],
    "bad_food": ["bland", "cold in the middle", "swimming in grease", "overcooked", "tasteless and dry",
                 "clearly reheated"],
    "bad_staff": ["rude", "impossible to find", "dismissive when we complained", "slow and careless"],
    "film": ["this film", "the new space epic", "this romantic comedy", "the sequel", "this musical",
             "the animated feature", "this courtroom drama", "the remake", "this horror film",
             "the director's latest", "the spy thriller", "this period drama"],
    "good_film": ["a genuine delight", "gripping from start to finish", "funny and surprisingly moving",
                  "a small masterpiece", "smart and beautifully shot", "thrilling"],
    "good_perf": ["superb", "career-best", "heartfelt", "magnetic", "wonderfully understated"],
    "bad_film": ["a tedious mess", "dull and far too long", "predictable from the first minute",
                 "a lazy cash grab", "confusing and joyless", "painfully unfunny"],
    "bad_perf": ["wooden", "strangely flat", "unconvincing", "over the top"],
    "product": ["coffee grinder", "phone case", "electric toothbrush", "robot vacuum", "rice cooker",
                "desk lamp", "backpack", "air fryer", "wireless mouse", "smartwatch", "water bottle",
                "office chair", "bluetooth speaker", "kitchen scale", "yoga mat", "suitcase"],
    "gadget": ["coffee grinder", "electric toothbrush", "robot vacuum", "rice cooker", "air fryer",
               "wireless mouse", "smartwatch", "bluetooth speaker", "hair dryer", "electric kettle",
               "fitness tracker", "tablet"],
    "good_product": ["brilliant", "excellent value", "a joy to use", "solid and well made",
                     "better than I hoped"],
    "good_gift": ["it was a huge hit", "my sister has not stopped talking about it",
                  "my dad uses it every single day", "everyone at the party wanted one"],
    "good_reason": ["it works exactly as described", "great build quality and a fair price",
                    "it arrived early and works perfectly", "simple, quiet and reliable"],
    "bad_event": ["stopped working", "broke", "started making a loud buzzing noise",
                  "would not turn on any more", "stopped charging", "died completely"],
    "period": ["two weeks", "a month", "three days", "one use", "less than a week", "two months"],
    "bad_reason": ["it broke within a week", "it was nothing like the photos",
                   "it overheated every time I used it", "half the features did not work",
                   "customer service ignored my emails", "it arrived damaged and dirty"],
}

# ============================================================================================== NER

# Entity lists: slot name -> (entity type, values). Values are pre-tokenised (space separated).
NER_ENTITIES: dict[str, tuple[str, list[str]]] = {
    "PER": ("PER", [
        "Maria Lopez", "John Carter", "Anna Kowalski", "Kenji Watanabe", "Fatima Al-Hassan", "Pierre Dubois",
        "Lars Nilsson", "Wei Chen", "Olga Petrova", "David Mensah", "Sarah O'Neill", "Rahul Sharma",
        "Thomas Becker", "Lucia Romano", "Ahmed Karim", "Emily Clarke", "Jan van der Berg",
        "Miguel Torres Ruiz", "Grace Njoroge", "Hannah Schmidt", "Tomasz Nowak", "Sofia Andersson",
        "Daniel Okafor", "Yuki Tanaka", "Isabel Costa", "Mark Johnson", "Priya Nair", "Luca Bianchi",
        "Nadia Haddad", "Peter Hughes", "Elena Ivanova", "Kwame Asante", "Laura Martin", "Jorge Ramirez",
        "Aisha Bello", "Oliver Wright", "Ingrid Larsen", "Marco Rossi", "Min-jun Park", "Carlos Mendes",
        "Helen Murphy", "Samuel Adeyemi", "Claire Fontaine", "Viktor Horvath", "Amelia Brooks",
        "Hiroshi Sato", "Nikos Papadopoulos", "Rosa Delgado", "Ben Goldberg", "Leila Nasser",
    ]),
    # Companies (invented names).
    "CO": ("ORG", [
        "Northwind Logistics", "Altamira Energy", "Kestrel Bank", "Bluefin Foods", "Solaris Motors",
        "Helix Pharmaceuticals", "Meridian Airlines", "Vantage Telecom", "Orion Steel", "Caldera Mining",
        "Brightwater Insurance", "Nordlicht", "Sakura Electronics", "Atlas Shipping", "Pioneer Semiconductor",
        "Greenfield Agritech", "Redwood Capital", "Ironbridge Construction", "Pixelforge", "Quantica",
        "Lumen Devices", "Harbor Retail Group", "Crescent Hotels", "Vela Biotech", "Tessera Media",
    ]),
    "CAR": ("ORG", ["Solaris Motors", "Volta Automotive", "Tamura Motors", "Nordstern", "Ridgeline Trucks"]),
    # Organisations that take "the".
    "INST": ("ORG", [
        "United Nations", "European Union", "World Health Organization", "African Union", "Red Cross",
        "World Food Programme", "World Bank", "European Commission", "Arab League", "Council of Europe",
    ]),
    "ECON": ("ORG", ["International Monetary Fund", "World Bank", "European Commission", "European Central Bank",
                     "Asian Development Bank", "OECD"]),
    # Organisations used without an article.
    "AGENCY": ("ORG", ["UNICEF", "NATO", "Interpol", "Amnesty International", "Oxfam", "Greenpeace",
                       "Human Rights Watch", "Doctors Without Borders"]),
    "CLUB": ("ORG", [
        "Manchester United", "Real Madrid", "Bayern Munich", "Ajax", "Juventus", "Celtic", "Boca Juniors",
        "Paris Saint-Germain", "Galatasaray", "Benfica", "Porto", "Inter Milan", "Borussia Dortmund",
        "Atletico Madrid", "Olympique Lyonnais", "River Plate", "Feyenoord", "Sporting Lisbon", "Everton",
        "Aston Villa", "Napoli", "Fenerbahce",
    ]),
    "PARTY": ("ORG", [
        "Labour Party", "Social Democrats", "Green Party", "Liberal Democrats", "National Party",
        "Christian Democratic Union", "Freedom Party", "People's Party",
    ]),
    "UNI": ("ORG", [
        "Stanford University", "Kyoto University", "Imperial College London", "Sorbonne University",
        "ETH Zurich", "Tsinghua University", "Harvard University", "McGill University",
        "Seoul National University", "Makerere University", "Trinity College Dublin", "Heidelberg University",
    ]),
    "NEWS": ("ORG", ["Reuters", "Associated Press", "BBC", "Al Jazeera", "Agence France-Presse",
                     "Bloomberg", "CNN", "Le Monde"]),
    "CITY": ("LOC", [
        "New York", "Los Angeles", "Buenos Aires", "Cape Town", "Hong Kong", "Kuala Lumpur", "Rio de Janeiro",
        "Sao Paulo", "Mexico City", "New Delhi", "Tel Aviv", "London", "Paris", "Berlin", "Tokyo", "Nairobi",
        "Lagos", "Madrid", "Rome", "Moscow", "Cairo", "Sydney", "Toronto", "Chicago", "Mumbai", "Seoul",
        "Istanbul", "Warsaw", "Stockholm", "Lisbon", "Dublin", "Frankfurt", "Geneva", "Brussels", "Jakarta",
        "Lima", "Bogota", "Oslo", "Vienna", "Athens", "San Francisco", "Abu Dhabi", "Santiago", "Manila",
    ]),
    # Countries used without an article.
    "COUNTRY": ("LOC", [
        "France", "Germany", "Japan", "Brazil", "Kenya", "South Africa", "New Zealand", "Saudi Arabia",
        "South Korea", "Canada", "India", "Mexico", "Egypt", "Nigeria", "Poland", "Spain", "Italy",
        "Argentina", "Indonesia", "Turkey", "Sweden", "Norway", "Australia", "China", "Chile", "Peru",
        "Ireland", "Portugal", "Ghana", "Vietnam", "Sri Lanka", "Costa Rica", "Sierra Leone", "Morocco",
    ]),
    # Countries that take "the" (the article itself is tagged O, as in CoNLL-2003).
    "THECOUNTRY": ("LOC", ["United States", "United Kingdom", "Netherlands", "Czech Republic", "Philippines",
                           "United Arab Emirates"]),
    "MOUNT": ("LOC", ["Alps", "Andes", "Himalayas", "Pyrenees", "Rocky Mountains", "Atlas Mountains",
                      "Carpathians"]),
    "SEA": ("LOC", ["North Sea", "Gulf of Mexico", "Mediterranean", "Baltic Sea", "Red Sea",
                    "South China Sea", "Caribbean", "Black Sea"]),
    "RIVER": ("LOC", ["Danube", "Rhine", "Nile", "Mekong", "Amazon", "Thames", "Mississippi", "Yangtze"]),
    "NAT": ("MISC", [
        "German", "French", "Brazilian", "Japanese", "Kenyan", "British", "Spanish", "Polish", "Mexican",
        "Canadian", "Swedish", "Nigerian", "Argentine", "Dutch", "Turkish", "Egyptian", "South African",
        "Chinese", "Portuguese", "Norwegian", "Chilean", "Korean", "Irish", "Greek",
    ]),
    # Events open to every country, then any multi-sport event (for hosting).
    "EVENT": ("MISC", ["World Cup", "Olympic Games", "Winter Olympics", "Rugby World Cup",
                       "Paralympic Games", "World Athletics Championships"]),
    "GAMES": ("MISC", ["Olympic Games", "Winter Olympics", "Commonwealth Games", "Asian Games",
                       "Pan American Games", "European Games", "Youth Olympic Games"]),
    "TENNIS": ("MISC", ["Australian Open", "French Open", "Italian Open", "Madrid Open", "Miami Open",
                        "Dubai Tennis Championships"]),
    "RACE": ("MISC", ["Tour de France", "Giro d'Italia", "Monaco Grand Prix", "Dakar Rally",
                      "Boston Marathon", "Vuelta a Espana"]),
    "CUP": ("MISC", ["Champions League", "Europa League", "Conference League", "FA Cup", "Copa del Rey",
                     "Copa Libertadores"]),
    "FEST": ("MISC", ["Cannes Film Festival", "Venice Film Festival", "Berlin Film Festival",
                      "Toronto International Film Festival", "Sundance Film Festival"]),
    "BOOKPRIZE": ("MISC", ["Nobel Prize in Literature", "Booker Prize", "Pulitzer Prize", "Prix Goncourt",
                           "International Booker Prize"]),
    "FILMPRIZE": ("MISC", ["Golden Globe", "Oscar", "BAFTA", "Palme d'Or", "Golden Bear"]),
    "LANG": ("MISC", ["English", "Spanish", "Arabic", "Mandarin", "Portuguese", "Swahili", "Hindi",
                      "French", "German", "Japanese"]),
}
# Plain (untagged, O) fillers for NER templates.
NER_PLAIN: dict[str, list[str]] = {
    "SCORE": ["2-1", "1-0", "3-2", "2-0", "3-1", "4-1"],
    "SETS": ["6-4 6-3", "7-5 6-2", "6-3 3-6 6-4", "6-2 7-6", "4-6 6-1 6-3"],
    "DAY": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "MONTH": ["January", "March", "April", "June", "September", "October", "December"],
    "NUM": ["1,500", "3,000", "700", "8,000", "2,400", "950", "12,000"],
    "MARGIN": ["12", "40", "8", "25", "31"],
    "PCT": ["1.5", "2.3", "4", "7.2", "0.8", "12"],
    "MONEY": ["1.2 billion", "3.5 billion", "800 million", "2.1 billion", "650 million", "90 million"],
    "FEE": ["45 million", "60 million", "18 million", "30 million", "75 million"],
    "TIME": ["9.87", "10.02", "9.95", "10.11", "9.91"],
    "ROLE": ["chief executive", "chairman", "finance director", "head of research", "general counsel"],
}
NER_TEMPLATES = [
    "{PER1} , chief executive of {CO1} , said on {DAY} the company would open a new office in {CITY1} .",
    "Shares in {CO1} rose {PCT} percent in {CITY1} after the group reported higher sales .",
    "{NAT1} Prime Minister {PER1} arrived in {CITY1} on {DAY} for talks with {NAT2} officials .",
    "{CLUB1} beat {CLUB2} {SCORE} on {DAY} to stay top of the league .",
    "{PER1} scored twice as {CLUB1} won {SCORE} in {CITY1} .",
    "The {INST1} said on {DAY} that emergency aid would reach {COUNTRY1} within days .",
    "{PER1} ( {COUNTRY1} ) won the 100 metres in {TIME} seconds .",
    "{PER1} , a {NAT1} engineer based in {CITY1} , designed the software .",
    "{CO1} agreed to buy {CO2} for {MONEY} dollars , the companies said .",
    "{PER1} will lead the {NAT1} team at the {EVENT1} in {CITY1} .",
    "{PER1} won the {BOOKPRIZE1} for a novel about life in {CITY1} .",
    "The {PARTY1} won {PCT} percent of the vote in the {NAT1} election , according to official results .",
    "{PER1} told {NEWS1} that talks with {COUNTRY1} were making progress .",
    "Researchers at {UNI1} and {UNI2} published the study on {DAY} .",
    "{CO1} , which is based in {CITY1} , employs about {NUM} people in {COUNTRY1} .",
    "The {ECON1} cut its growth forecast for {COUNTRY1} to {PCT} percent .",
    "{PER1} and {PER2} will meet in the final of the {TENNIS1} on {DAY} .",
    "The film , shot in {COUNTRY1} and dubbed into {LANG1} , premiered at the {FEST1} .",
    "{PER1} , who joined {CO1} from {CO2} last year , resigned on {DAY} .",
    "Flights between {CITY1} and {CITY2} were cancelled because of the storm .",
    "Heavy snow closed several roads in the {MOUNT1} on {DAY} .",
    "An oil spill was reported in the {SEA1} on {DAY} , the coast guard said .",
    "{NAT1} coach {PER1} named an unchanged side for the match against {COUNTRY1} .",
    "{COUNTRY1} beat {COUNTRY2} {SCORE} in a {EVENT1} qualifier in {CITY1} .",
    "{PER1} , a spokesperson for the {INST1} , declined to comment .",
    "The {NAT1} embassy in {CITY1} warned against travel to parts of {COUNTRY1} .",
    "{PER1} finished second behind {PER2} in the {RACE1} .",
    "{CO1} will build a factory near {CITY1} , creating {NUM} jobs .",
    "{PER1} was born in {CITY1} and moved to {COUNTRY1} as a teenager .",
    "Talks in {CITY1} between {COUNTRY1} and {COUNTRY2} ended without agreement .",
    "{CLUB1} striker {PER1} has been ruled out for six weeks with a hamstring injury .",
    "The {INST1} and the {INST2} pledged {MONEY} dollars in aid to {COUNTRY1} .",
    "{PER1} 's new album , recorded in {CITY1} , went straight to the top of the charts .",
    "{PER1} told reporters in {CITY1} that {CO1} had no plans to sell the unit .",
    "{CAR1} recalled {NUM} cars sold in {COUNTRY1} because of a faulty brake sensor .",
    "{PER1} , a professor at {UNI1} , leads the project .",
    "The {CUP1} final will be played in {CITY1} in {MONTH} .",
    "Fans of {CLUB1} celebrated in the streets of {CITY1} until dawn .",
    "The {LANG1} edition of the book sold {NUM} copies in its first week .",
    "{NAT1} and {NAT2} troops held joint exercises near {CITY1} .",
    "{CO1} said its {ROLE} , {PER1} , would step down in {MONTH} .",
    "The {GAMES1} will be held in {CITY1} , organisers confirmed on {DAY} .",
    "{PER1} , the {NAT1} foreign minister , said {COUNTRY1} was ready to resume talks .",
    "Protesters gathered outside the {INST1} headquarters in {CITY1} on {DAY} .",
    "{CO1} opened its first office in {COUNTRY1} last {MONTH} .",
    "{PER1} spent ten years at the {INST1} before joining {CO1} .",
    "Water levels on the {RIVER1} fell to a record low , disrupting shipping .",
    "{PER1} , speaking in {LANG1} , thanked fans in {CITY1} after the concert .",
    "{PER1} withdrew from the {TENNIS1} with a wrist injury .",
    "{PER1} won the {RACE1} for the second year in a row , beating {PER2} by {MARGIN} seconds .",
    "{CLUB1} will face {CLUB2} in the {CUP1} quarter-finals .",
    "{PER1} beat {PER2} {SETS} to reach the semi-finals of the {TENNIS1} .",
    "The {NAT1} writer {PER1} was awarded the {BOOKPRIZE1} on {DAY} .",
    "{PER1} won the {FILMPRIZE1} for best director for a drama set in {CITY1} .",
    "{PER1} , a {NAT1} tourist , was rescued by mountain guides in the {MOUNT1} .",
    "{CO1} and {CO2} will form a joint venture in {COUNTRY1} .",
    "Police in {CITY1} arrested two men on {DAY} , {PER1} , a police spokesperson , told {NEWS1} .",
    "{PER1} left {CLUB1} to join {CLUB2} in a deal worth {FEE} euros .",
    "{CITY1} and {CITY2} are competing to host the {GAMES1} .",
    "The {PARTY1} leader , {PER1} , promised to cut taxes if elected .",
    "{PER1} said {PER2} had been a mentor to {PER1.surname} during their years at {UNI1} .",
    "{AGENCY1} said on {DAY} it was sending a team of experts to {COUNTRY1} .",
    "Exports from the {THECOUNTRY1} to {COUNTRY1} rose {PCT} percent last year .",
    "The {NAT1} ambassador to the {THECOUNTRY1} was summoned on {DAY} .",
    "{PER1} , who grew up in the {THECOUNTRY1} , now lives in {CITY1} .",
]
NER_NO_ENTITY = [
    "The company said profits fell sharply in the third quarter .",
    "Shares closed 2 percent lower on Friday .",
    "The match was postponed because of heavy rain .",
    "Police said the driver had been arrested .",
    "Officials expect the bridge to reopen next week .",
    "Talks will resume on Monday , the spokesman said .",
    "Prices rose 0.3 percent in May .",
    "The home side had the better of the first half .",
    "Scientists say the findings need to be confirmed .",
    "Three people were injured in the fire .",
    "The new rules take effect in January .",
    "Analysts had expected a smaller loss .",
    "The government denied the report .",
    "It was their fourth win in a row .",
    "The museum will stay closed until further notice .",
    "Voters will choose a new mayor in the autumn .",
    "The team lost 2-0 at home .",
    "Demand for electric cars continues to grow .",
    "The strike disrupted train services across the country .",
    "He said he was happy with the result .",
    "The report will be published later this month .",
    "Most schools reopened on Tuesday after the storm .",
    "The central bank kept interest rates unchanged .",
    "Ticket sales have doubled since last year .",
    "The minister resigned after weeks of pressure .",
    "Farmers say the drought has ruined their harvest .",
    "Rescue workers searched the rubble through the night .",
    "The coach praised his players for their effort .",
    "Both sides said they were ready to compromise .",
    "The airline cancelled dozens of flights on Sunday .",
    "Unemployment fell for the third month in a row .",
    "The court will announce its decision next week .",
    "She scored the winning goal in extra time .",
    "The price of coffee has doubled in two years .",
    "The festival attracts thousands of visitors every summer .",
    "Engineers are still trying to find the cause of the outage .",
]

# Eight unseen sentences (plain text) mixing topic, sentiment and entities, for `mtsent demo`.
EXAMPLES = [
    "Shares of Falcon Robotics jumped 8 percent in Frankfurt after the company raised its profit forecast.",
    "Honestly, the new Italian restaurant in Boston was not bad at all; the lasagna was superb.",
    "Celtic striker Jonas Ekberg scored twice as his side beat Aberdeen 3-1 on Saturday.",
    "The Canadian foreign minister Laura Chen met Kenyan officials in Nairobi to discuss the refugee crisis.",
    "Engineers at Oxford University built a tiny robot that can swim through blood vessels.",
    "I bought this laptop last month and it already overheats every time I open a video.",
    "The Berlin Marathon was won by Ethiopian runner Tadesse Bekele in a new course record.",
    "What a dull, predictable film; even the usually brilliant cast could not save it.",
]

# fmt: on
# =========================================================================================== engine


def _base(name: str) -> str:
    return name.rstrip("0123456789")


def _fix_articles(words: list[str]) -> list[str]:
    """'a' before a vowel-initial word becomes 'an' (the values in the lists avoid 'Ukrainian'-type cases)."""
    out = list(words)
    for i in range(len(out) - 1):
        nxt = out[i + 1].lower()
        if out[i] in ("a", "A") and nxt[:1] in "aeiou" and not nxt.startswith(("eu", "uni", "one", "use")):
            out[i] += "n"
    return out


def _fill_text(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    """Fill `{slot}`/`{slot2}`; numbered uses of the same list always get different values."""
    chosen: dict[str, str] = {}
    used: dict[str, set[str]] = {}

    def repl(m: re.Match[str]) -> str:
        key = m.group(1) + m.group(2)
        if key not in chosen:
            base = m.group(1)
            options = [v for v in slots[base] if v not in used.setdefault(base, set())]
            chosen[key] = rng.choice(options)
            used[base].add(chosen[key])
        return chosen[key]

    text = _SLOT.sub(repl, template)
    text = " ".join(_fix_articles(text.split(" ")))
    return text[0].upper() + text[1:]


def _fill_tokens(template: str, rng: random.Random) -> list[tuple[str, str]]:
    """Fill an NER template (space-tokenised) into (token, IOB2 tag) pairs."""
    chosen: dict[str, list[str]] = {}
    used: dict[str, set[str]] = {}
    pairs: list[tuple[str, str]] = []
    for piece in template.split():
        m = _SLOT.fullmatch(piece)
        if m is None:
            pairs.append((piece, "O"))
            continue
        name, index, last = m.group(1), m.group(2), m.group(3)
        key = name + index
        if key not in chosen:
            values = NER_ENTITIES[name][1] if name in NER_ENTITIES else NER_PLAIN[name]
            options = [v for v in values if v not in used.setdefault(name, set())]
            value = rng.choice(options)
            used[name].add(value)
            chosen[key] = value.split()
        words = chosen[key][1:] if last else chosen[key]
        if name in NER_ENTITIES:
            etype = NER_ENTITIES[name][0]
            pairs.extend((w, ("B-" if i == 0 else "I-") + etype) for i, w in enumerate(words))
        else:
            pairs.extend((w, "O") for w in words)
    fixed = _fix_articles([w for w, _ in pairs])
    words = [f if t == "O" else w for f, (w, t) in zip(fixed, pairs, strict=True)]  # never edit entities
    words[0] = words[0][0].upper() + words[0][1:]
    return [(w, t) for w, (_, t) in zip(words, pairs, strict=True)]


def _generate(
    fixed: Sequence[str],
    templates: Sequence[str],
    n: int,
    make: Callable[[str], object],
    key: Callable[[object], str],
    rng: random.Random,
) -> list[object]:
    """All fixed items first, then templates round-robin (shuffled per round) until n unique items."""
    items: list[object] = list(fixed)
    seen = {key(x) for x in items}
    attempts = 0
    while len(items) < n:
        order = list(templates)
        rng.shuffle(order)
        for template in order:
            if len(items) >= n:
                break
            for _ in range(20):  # retry a few times if the filled item already exists
                attempts += 1
                item = make(template)
                if key(item) not in seen:
                    seen.add(key(item))
                    items.append(item)
                    break
        if attempts > 100 * n:
            raise RuntimeError("templates cannot produce enough unique items")
    return items[:n]


def make_topic(rng: random.Random) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for label, fixed, templates in (
        ("World", WORLD_FIXED, WORLD_TEMPLATES),
        ("Sports", SPORTS_FIXED, SPORTS_TEMPLATES),
        ("Business", BUSINESS_FIXED, BUSINESS_TEMPLATES),
        ("Sci/Tech", SCITECH_FIXED, SCITECH_TEMPLATES),
    ):
        texts = _generate(fixed, templates, PER_CLASS, lambda t: _fill_text(t, TOPIC_SLOTS, rng), str, rng)
        rows.extend((str(t), label) for t in texts)
    rng.shuffle(rows)
    return rows


def make_sentiment(rng: random.Random) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for label, fixed, templates in (
        ("positive", POSITIVE_FIXED, POSITIVE_TEMPLATES),
        ("negative", NEGATIVE_FIXED, NEGATIVE_TEMPLATES),
    ):
        texts = _generate(fixed, templates, PER_POLARITY, lambda t: _fill_text(t, SENTIMENT_SLOTS, rng), str, rng)
        rows.extend((str(t), label) for t in texts)
    rng.shuffle(rows)
    return rows


def make_ner(rng: random.Random) -> list[list[tuple[str, str]]]:
    fixed = [[(w, "O") for w in s.split()] for s in NER_NO_ENTITY]
    sentences = _generate(
        fixed,
        NER_TEMPLATES,
        NER_SENTENCES,
        lambda t: _fill_tokens(t, rng),
        lambda s: " ".join(w for w, _ in s),  # type: ignore[attr-defined]
        rng,
    )
    out = [list(s) for s in sentences]  # type: ignore[call-overload]
    rng.shuffle(out)
    return out


# ======================================================================================= validation

_TAG = re.compile(r"^(O|[BI]-(PER|ORG|LOC|MISC))$")


def validate_table(rows: list[tuple[str, str]], labels: set[str]) -> None:
    texts = [t for t, _ in rows]
    assert len(set(texts)) == len(texts), "duplicate texts"
    for text, label in rows:
        assert text.strip() and text == text.strip(), f"empty/unstripped text: {text!r}"
        assert not any(c in text for c in '\t\n\r"'), f"tab, newline or double quote in text: {text!r}"
        assert "  " not in text and "{" not in text and "}" not in text, f"bad fill: {text!r}"
        assert label in labels, f"unknown label {label!r}"


def validate_ner(sentences: list[list[tuple[str, str]]]) -> None:
    for sent in sentences:
        assert sent, "empty sentence"
        prev = "O"
        for token, tag in sent:
            assert token and not any(c.isspace() for c in token), f"bad token {token!r}"
            assert "{" not in token and "}" not in token, f"unfilled slot in {sent}"
            assert _TAG.match(tag), f"bad tag {tag!r}"
            if tag.startswith("I-"):
                assert prev != "O" and prev[2:] == tag[2:], f"I- without B-: {sent}"
            prev = tag


def main() -> None:
    rng = random.Random(SEED)
    topic = make_topic(rng)
    sentiment = make_sentiment(rng)
    ner = make_ner(rng)
    validate_table(topic, {"World", "Sports", "Business", "Sci/Tech"})
    validate_table(sentiment, {"positive", "negative"})
    validate_ner(ner)
    train_texts = {t for t, _ in topic + sentiment} | {" ".join(w for w, _ in s) for s in ner}
    assert not train_texts & set(EXAMPLES), "an example sentence is also in the training data"

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, rows in (("topic.tsv", topic), ("sentiment.tsv", sentiment)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for t, label in rows]
        (OUT_DIR / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    blocks = ["\n".join(f"{w} {t}" for w, t in s) for s in ner]
    (OUT_DIR / "ner.conll").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    (OUT_DIR / "examples.txt").write_text("\n".join(EXAMPLES) + "\n", encoding="utf-8")

    print(f"wrote {OUT_DIR}")
    print("topic:", dict(sorted(Counter(label for _, label in topic).items())))
    print("sentiment:", dict(sorted(Counter(label for _, label in sentiment).items())))
    entities = Counter(t[2:] for s in ner for _, t in s if t.startswith("B-"))
    no_ent = sum(all(t == "O" for _, t in s) for s in ner)
    print(f"ner: {len(ner)} sentences ({no_ent} without entities), entities: {dict(sorted(entities.items()))}")


if __name__ == "__main__":
    main()
